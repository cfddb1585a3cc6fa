"""`cellrig serve` as a lab would use it: started as its own process over a live campaign on the virtual lab
(itself a process), opened in headless Chromium (Playwright driving Debian's chromium) on a phone-sized
and a desktop window: rows appear and update without a reload, a trip comes to the top, a run's plots draw.
Also: the token on a non-local bind, and the server-side decimation."""

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from browser import chromium
from cycling import cccv_cycles
from playwright.sync_api import sync_playwright
from waiting import wait_for

from cellrig.analysis.synthetic import SyntheticCell, write_run
from cellrig.protocols import parse
from cellrig.protocols.engine import State
from cellrig.protocols.program import Enter
from cellrig.serve.eta import time_left
from cellrig.serve.series import decimate
from cellrig.sim.process import served_lab

CELLRIG = Path(sys.executable).with_name("cellrig")
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}
TRIP_LATER = """
name: trip-later
limits: {voltage_max: 4.0 V}
steps:
  - rest: 12 h
  - cccv: {current: 0.5C, voltage: $v_max, until_current: C/20, max_time: 3 h}
"""
CAMPAIGN = """\
name: served
lab: lab.toml
defaults: {cycler: cycler, daq: daq}
cells:
  - {id: LIFE-01, type: lfp-5Ah, protocol: cycles.yaml, channel: 103, probes: {temperature: 103}}
  - {id: TRIP-01, type: nmc811-5Ah, protocol: trip.yaml, channel: 101, probes: {temperature: 101}}
"""


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """``cellrig serve ARGS --port 0`` in its own process; yields the address it printed."""
    server = subprocess.Popen(
        [str(CELLRIG), "serve", *args, "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        line = server.stderr.readline()
        found = re.search(r"at (http://\S+)", line)
        assert found, f"cellrig serve said {line!r}"
        yield found.group(1).replace("localhost", "127.0.0.1")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_decimation_keeps_spikes_order_and_a_bounded_size():
    t = np.arange(1_000_000.0)
    y = np.sin(t / 5e4)
    y[654_321] = 9.0
    y[10] = np.nan
    td, yd = decimate(t, y, 1000)
    assert len(td) == 1000 and np.all(np.diff(td) > 0)
    assert np.nanmax(yd) == 9.0 and td[np.nanargmax(yd)] == 654_321
    assert np.nanmin(yd) == pytest.approx(-1.0, abs=1e-6)


TIMED = """
name: timed
steps:
  - rest: 2 h
  - repeat:
      times: 3
      steps:
        - rest: 1 h
        - wait: 30 min
"""


def test_time_left_walks_the_remaining_steps_through_their_loops():
    program = parse(TIMED).program
    assert time_left(program, State(), None) == (2 * 3600 + 3 * 5400, True)
    assert time_left(program, State(), 1800.0) == (1.5 * 3600 + 3 * 5400, True)  # half an hour into the rest
    first = next(i for i, ins in enumerate(program) if getattr(ins, "label", "") == "repeat/wait")
    loop = next(ins.loop for ins in program if isinstance(ins, Enter))
    in_second = State(pc=first, count={loop: 1})  # the wait of the second time round (one done), not started
    assert time_left(program, in_second, None) == (1800 + 5400, True)
    bounded = time_left(parse(cccv_cycles("c", 2)).program, State(), None)
    assert bounded == (2 * (3 * 3600 + 600 + 3 * 3600 + 600), False)  # charges end on a current: at most
    loop = "{times: 100, until: retention < 80 %, steps: [{cc: {current: -1C, until_voltage: $v_min}}]}"
    until = f"name: u\nsteps:\n  - repeat: {loop}\n"
    assert time_left(parse(until).program, State(), None) is None


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as reply:
            return reply.status, reply.headers.get("set-cookie", "")
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_a_bind_beyond_this_machine_needs_the_token_it_printed(tmp_path):
    write_run(tmp_path / "a.h5", SyntheticCell(cycles=5, samples=60))
    with serving(str(tmp_path), "--host", "0.0.0.0") as url:
        token = url.split("token=")[1]
        base = "http://127.0.0.1:" + url.split(":")[2].split("/")[0]
        assert _get(f"{base}/api/overview")[0] == 401
        assert _get(f"{base}/api/overview?token=wrong")[0] == 401
        status, cookie = _get(f"{base}/api/overview?token={token}")
        assert status == 200 and f"cellrig_token={token}" in cookie and "HttpOnly" in cookie
        assert _get(f"{base}/api/overview", {"Cookie": f"cellrig_token={token}"})[0] == 200
        assert _get(f"{base}/api/overview", {"Authorization": f"Bearer {token}"})[0] == 200
    with serving(str(tmp_path)) as url:  # on this machine alone: no token
        assert "token" not in url and _get(f"{url}api/overview")[0] == 200


def _cells(page) -> list[tuple[str, str, str]]:
    """(cell, state, elapsed) of each overview row, top to bottom."""
    rows = page.locator("#runs tbody tr")
    return [
        (r.locator("td").nth(0).inner_text(), r.locator(".state").inner_text(), r.locator("td").nth(8).inner_text())
        for r in rows.all()
    ]


def test_a_live_campaign_shows_in_a_phone_and_a_desktop_browser_updates_and_puts_its_trip_on_top(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with served_lab(tmp_path / "lab.toml", speed=5000, dt=2):
        (tmp_path / "cycles.yaml").write_text(cccv_cycles("cycles", 6))
        (tmp_path / "trip.yaml").write_text(TRIP_LATER)
        (tmp_path / "campaign.yaml").write_text(CAMPAIGN)
        campaign = subprocess.Popen(
            [str(CELLRIG), "campaign", str(tmp_path / "campaign.yaml"), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            with serving(str(out), "--title", "bench 2") as url, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(chromium()), args=["--no-sandbox"])
                phone = browser.new_page(viewport=PHONE)
                phone.goto(url)
                wait_for(lambda: len(_cells(phone)) == 2, "both runs on the page", 60, 0.1)
                lefts = phone.locator("#runs td[data-label=left]")
                wait_for(lambda: any(t.startswith("≤ ") for t in lefts.all_inner_texts()), "a time left", 60, 0.1)
                first = {cell: elapsed for cell, _, elapsed in _cells(phone)}
                wait_for(
                    lambda: any(first[c] != e for c, _, e in _cells(phone)), "a run's elapsed time to move", 60, 0.1
                )
                wait_for(lambda: _cells(phone)[0][:2] == ("TRIP-01", "tripped"), "the trip at the top", 120, 0.1)
                assert "cycler voltage" in phone.locator("#runs tbody tr").first.locator(".reason").inner_text()
                phone.screenshot(path=tmp_path / "overview-phone.png", full_page=True)
                desktop = browser.new_page(viewport=DESKTOP)
                desktop.goto(url)
                desktop.wait_for_selector("#runs tbody tr >> nth=1")
                desktop.screenshot(path=tmp_path / "overview-desktop.png")
                for page, name in ((phone, "phone"), (desktop, "desktop")):
                    page.click("text=LIFE-01")
                    page.wait_for_selector(".plot canvas")
                    titles = page.locator(".plot h3").all_inner_texts()
                    assert {"voltage (V)", "current (A)", "temperature (°C)"} <= set(titles), titles
                    inked = page.evaluate(
                        """() => [...document.querySelectorAll('.plot canvas')].map((c) => {
                             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                             let coloured = 0;
                             for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 80) coloured++;
                             return coloured; })"""
                    )
                    assert all(n > 100 for n in inked), inked  # every plot has its blue trace drawn
                    page.screenshot(path=tmp_path / f"run-{name}.png", full_page=True)
                browser.close()
        finally:
            campaign.terminate()
            campaign.wait(timeout=120)
    for shot in ("overview-phone", "overview-desktop", "run-phone", "run-desktop"):
        assert (tmp_path / f"{shot}.png").stat().st_size > 10_000, shot
