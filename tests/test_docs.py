"""Every command the README and docs show runs, as written, in a fresh folder, as a new user would type it.

Each command line of the pages' ``bash`` blocks is run through ``bash -c`` with the installed
``cellrig`` (and ``dask``) first on PATH: the README's tour in order, against ``cellrig sim`` on the
fixed ports of ``examples/lab-virtual.toml``; the dask-cluster lines with HEAD standing for this
machine; the demo (the README's first command after its install, which CI's own command does).
A page gaining a command no test runs fails :func:`test_every_documented_command_is_run`.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from waiting import wait_for

from cellrig import open_run
from cellrig.analysis.synthetic import SyntheticCell, write_run
from cellrig.storage import RunFileError

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent  # where pip put the cellrig and dask commands
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200", "NO_COLOR": "1"}
# the README's install prefix
INSTALL = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install .+? && \.venv/bin/")


def blocks(page: Path) -> list[list[str]]:
    """The command lines of each ``bash`` block of a page, comments cut off."""
    found = re.findall(r"```bash\n(.+?)```", page.read_text(encoding="utf-8"), flags=re.S)
    return [[line.split("  #")[0].strip() for line in block.splitlines() if line.strip()] for block in found]


def documented() -> set[str]:
    return {line for page in PAGES for block in blocks(page) for line in block}


README = blocks(ROOT / "README.md")
FIRST, TESTS, TOUR, CLUSTER = README  # the demo, the tests, the tour, the dask cluster
LAB = tomllib.loads((ROOT / "examples" / "lab-virtual.toml").read_text(encoding="utf-8"))
LAB_PORTS = [int(role["resource"].split("::")[2]) for role in LAB["roles"].values()]  # what the tour's sim serves
PROTOCOL_PAGE = [line for block in blocks(ROOT / "docs" / "protocols.md") for line in block]


def shell(line: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one documented line as typed at a prompt in ``cwd``."""
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(line: str, cwd: Path, timeout: float = 600) -> str:
    out = shell(line, cwd, timeout)
    assert out.returncode == 0, f"{line!r} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


class Background:
    """Lines ended with ``&`` (or typed into another terminal): started, and killed at the end."""

    def __init__(self, cwd: Path) -> None:
        self.cwd, self.processes = cwd, []

    def start(self, line: str, log: str) -> subprocess.Popen:
        out = (self.cwd / log).open("w")
        process = subprocess.Popen(
            ["bash", "-c", f"exec {line.rstrip('&').strip()}"], cwd=self.cwd, env=ENV, stdout=out, stderr=out
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # as Ctrl-C: the sim and engines shut down cleanly
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def background(tmp_path) -> Iterator[Background]:
    b = Background(tmp_path)
    yield b
    b.stop()


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def runs_in(folder: Path) -> list:
    return [open_run(p) for p in sorted(folder.glob("*.h5"))]


def steps_done(folder: Path, runs: int) -> int:
    """The fewest steps any of the ``runs`` runs in ``folder`` has completed (0 until all exist)."""
    try:
        found = runs_in(folder)
        return min((r.events["kind"] == "checkpoint").sum() for r in found) if len(found) == runs else 0
    except RunFileError:  # a run file still being created
        return 0


def test_every_documented_command_is_run():
    run_here = {*FIRST, *TESTS, *TOUR, *CLUSTER, *PROTOCOL_PAGE}
    assert documented() <= run_here, f"documented but run by no test: {sorted(documented() - run_here)}"
    assert INSTALL.match(FIRST[0]) and INSTALL.sub("", FIRST[0]) == "cellrig demo"
    assert INSTALL.sub("", TESTS[0]) == "python -m pytest"  # what .ci/run runs, this suite included


@pytest.mark.long
def test_the_readme_tour_runs_line_by_line(tmp_path, background):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # the tour runs from a checkout's root
    campaign = cells = None
    for line in TOUR:
        if line == "cellrig protocols list":
            listed = ok(line, tmp_path)
            assert all(name in listed for name in ("formation", "cycle-life", "hot-box", "nail-gbt31485", "crush"))
        elif line.startswith("cellrig protocols show "):
            assert "GB/T 31485" in ok(line, tmp_path)
        elif line == "cellrig protocols check temperature-sweep":  # refused, as its comment says
            out = shell(line, tmp_path)
            assert out.returncode == 1 and "85 °C is outside the cell's rated -20…60 °C" in out.stderr
            assert "temperature-sweep.yaml:" in out.stderr and not (tmp_path / "runs").exists()
        elif line.startswith("cellrig run "):
            before = len(list((tmp_path / "runs").glob("*.h5")))
            ok(line, tmp_path)
            new = runs_in(tmp_path / "runs")[before:] if before else runs_in(tmp_path / "runs")
            assert [r.status for r in new] == ["finished"], line
            if "hot-box" in line:
                assert new[0].meta["cell"]["chemistry"].startswith("sulfide")
                assert new[0]["chamber"]["temperature"].max() > 199.0
        elif line == "cellrig resume runs":  # after the kill -9 its comment speaks of, mid-run
            before = {r.path for r in runs_in(tmp_path / "runs")}
            killed = background.start("cellrig run capacity --out runs", "killed.log")
            runs = len(before) + 1
            wait_for(lambda n=runs: steps_done(tmp_path / "runs", n) >= 1, "a checkpoint", timeout=120)
            killed.kill()
            killed.wait()
            ok(line, tmp_path)
            [again] = [r for r in runs_in(tmp_path / "runs") if r.path not in before]
            assert again.status == "finished" and (again.events["kind"] == "resume").sum() == 1
        elif line.startswith("cellrig sim "):
            background.start(line, "sim.log")
            wait_for(lambda: all(listening(p) for p in LAB_PORTS), "the virtual lab's ports", timeout=60)
        elif line.startswith("cellrig campaign "):  # terminal 1; the next lines come from another one
            campaign = background.start(line, "campaign.log")
            wait_for(
                lambda: steps_done(tmp_path / "life", 6) >= 3,
                "six runs three steps in",
                timeout=300,
                period=0.5,
            )
            cells = {r.meta["cell"]["id"] for r in runs_in(tmp_path / "life")}
        elif line == "cellrig status life":
            shown = ok(line, tmp_path)
            assert all(cell in shown for cell in cells) and "running" in shown
        elif line == "cellrig pause life && cellrig continue life":
            said = ok(line, tmp_path)
            assert said.count("pause: paused by the operator") == 6, said
            assert said.count("continue: continued by the operator") == 6, said
        elif line == "cellrig resume life":  # after the crash its comment speaks of: kill -9 the campaign
            assert campaign.poll() is None, "the campaign ended before it could be killed"
            campaign.kill()
            campaign.wait()
            assert {r.status for r in runs_in(tmp_path / "life")} == {"interrupted"}
            ok(line, tmp_path, timeout=900)
            runs = runs_in(tmp_path / "life")
            assert [r.status for r in runs] == ["finished"] * 6
            assert all((r.events["kind"] == "resume").sum() == 1 for r in runs)
            assert all(list(r.events["kind"]).count("pause") == 1 for r in runs)
        elif line == "cellrig analyze life && cellrig report life -o report.html":
            said = ok(line, tmp_path)
            assert "life/analysis/cycles.csv" in said and "report: report.html" in said
            page = (tmp_path / "report.html").read_text(encoding="utf-8")
            assert all(cell in page for cell in cells) and "<h2>Capacity fade</h2>" in page
        else:
            pytest.fail(f"the README's tour shows {line!r}: teach this test what it should do")


def test_the_dask_cluster_lines_run_with_head_this_machine(tmp_path, background):
    for i in range(2):
        write_run(tmp_path / "runs" / f"S{i}.h5", SyntheticCell(cell_id=f"S{i}", cycles=30, samples=60, seed=i))
    lines = [line.replace("HEAD", "127.0.0.1") for line in CLUSTER]
    assert [line.split()[:2] for line in lines] == [["dask", "scheduler"], ["dask", "worker"], ["cellrig", "analyze"]]
    background.start(lines[0], "scheduler.log")
    wait_for(lambda: listening(8786), "the dask scheduler", timeout=60)
    background.start(lines[1], "worker.log")
    said = ok(lines[2], tmp_path)
    assert "analysing runs on tcp://127.0.0.1:8786" in said
    assert "Receive client connection" in (tmp_path / "scheduler.log").read_text()
    assert "S0" in said and "S1" in said and (tmp_path / "runs" / "analysis" / "cycles.parquet").exists()


@pytest.mark.parametrize("line", PROTOCOL_PAGE)
def test_the_protocol_pages_commands_run(line, tmp_path):
    said = ok(line, tmp_path)
    if line.startswith("cellrig run"):
        assert [r.status for r in runs_in(tmp_path / "runs")] == ["finished"]
    elif "check" in line:
        assert "ok: hot-box on nmc811-5Ah" in said and "within every limit" in said


@pytest.mark.long
def test_the_demo_runs_to_a_report_and_never_overwrites(tmp_path):
    said = ok(INSTALL.sub("", FIRST[0]), tmp_path, timeout=900)
    demo = tmp_path / "demo"
    assert f"report:  {Path('demo') / 'report.html'}" in said
    runs = [open_run(p) for p in sorted(demo.glob("*/*.h5"))]
    chemistries = {r.meta["cell"]["chemistry"].split("/")[0].split()[0] for r in runs}
    assert chemistries == {"NMC811", "LFP", "sulfide"}
    page = (demo / "report.html").read_text(encoding="utf-8")
    for heading in ("Capacity fade", "Temperature", "Early life prediction", "Abuse tests"):
        assert f"<h2>{heading}</h2>" in page
    assert "EUCAR" in page
    # each chemistry's 45 °C cell reaches end of life before its 25 °C one, as the published laws have it
    life = pd.read_csv(demo / "analysis" / "life.csv").query("protocol == 'cycle-life'")
    for chemistry, cells in life.groupby("chemistry"):
        warm = cells[cells["temperature"] == 25.0]["eol_robust"].fillna(cells["last_cycle"]).min()
        hot = cells[cells["temperature"] == 45.0]["eol_robust"].dropna()
        assert len(hot) and hot.max() < warm, chemistry
    assert 'alt="pulse resistance vs state of charge"' in page  # the HPPC runs, apart from the life table
    again = shell("cellrig demo", tmp_path)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_the_driver_command_tables_in_the_docs_are_the_drivers_own():
    from cellrig.instruments.commands import commands_of, markdown_table
    from cellrig.instruments.registry import DRIVERS

    text = (ROOT / "docs" / "lab.md").read_text()
    tables = re.findall(r"<!-- commands: (\w+) .*?-->\n(.*?)\n<!-- /commands -->", text, re.S)
    assert {name for name, _ in tables} == set(DRIVERS)  # every driver has its table, in the docs
    for name, table in tables:
        assert commands_of(DRIVERS[name].target), name
        assert table == markdown_table(commands_of(DRIVERS[name].target)), name
