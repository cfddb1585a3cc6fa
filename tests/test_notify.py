"""Alerts: checked routes, `cellrig notify test`, retries, and a live campaign's trip reaching a webhook and a
mail server on this machine (real HTTP and SMTP servers, real apprise, the virtual lab in its own process)."""

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from receivers import mailbox, webhook
from waiting import wait_for

from cellrig import notify, open_run
from cellrig.cli import main
from cellrig.lab import Lab, LabFileError
from cellrig.notify import Notifier, Route
from cellrig.protocols import Binding, Probe, parse
from cellrig.protocols.engine import Runner, Shared
from cellrig.sim.lab import VirtualLab
from cellrig.sim.process import served_lab

ROLES = Path(__file__).parents[1] / "examples" / "lab-virtual.toml"
DEAD = "json://127.0.0.1:1/nobody"  # port 1: nothing listens, the connection is refused at once
TRIP = """
name: trip
limits: {voltage_max: 4.0 V}
steps:
  - cccv: {current: 0.5C, voltage: $v_max, until_current: C/20, max_time: 3 h}
"""
REST = """
name: rest
steps:
  - rest: 20 min
"""


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF_S", (0.2, 0.2))


def _lab_text(*routes: str, extra: str = "") -> str:
    lines = ["", "[notify]", extra] + [f'[[notify.to]]\nurl = "{url}"' for url in routes]
    return ROLES.read_text() + "\n".join(lines) + "\n"


def test_a_notify_section_with_mistakes_is_refused_with_every_reason(tmp_path):
    bad = {
        "roles": tomllib.loads(ROLES.read_text())["roles"],
        "notify": {
            "disk_free_gb": -1,
            "to": [
                {"url": "nosuchservice://x", "events": ["dusk"]},
                {"url": "json://127.0.0.1/x", "events": ["trip", "sunrise"]},
                "x",
            ],
        },
    }
    with pytest.raises(LabFileError) as err:
        Lab.from_dict(bad, "lab.toml")
    said = str(err.value)
    for reason in ("notify.disk_free_gb", "notify.to[0].url", "notify.to[0].events", "sunrise", "notify.to[2]"):
        assert reason in said, said


def test_notify_test_delivers_to_a_webhook_and_a_mail_server_and_names_a_route_that_fails(tmp_path, quick_retries):
    with webhook() as hook, mailbox() as mail:
        lab = tmp_path / "lab.toml"
        lab.write_text(_lab_text(hook.url, mail.url))
        result = CliRunner().invoke(main, ["notify", "test", str(lab)])
        assert result.exit_code == 0, result.output
        assert result.output.count("delivered") == 2
        assert hook.titles() == mail.titles() == ["cellrig test alert (virtual lab on fixed ports)"]
        assert "oncall@example.com" in mail.items[0][1]["to"]
        lab.write_text(_lab_text(hook.url, DEAD))
        result = CliRunner().invoke(main, ["notify", "test", str(lab)])
        assert result.exit_code == 1 and "FAILED json://127.0.0.1:1/nobody" in result.output, result.output
        assert len(hook.items) == 2


def test_a_service_down_for_a_while_gets_the_alert_on_a_retry_and_a_dead_one_never_holds_up_another(quick_retries):
    said: list[tuple[float, str, str]] = []
    with webhook() as hook:
        hook.refuse = 1
        notifier = Notifier([Route(DEAD), Route(hook.url, frozenset({"trip"}))])
        notifier.send(
            "trip", "NMC-01 TRIPPED", "cell voltage 4.01 V > 4.0 V", lambda *k: said.append((time.time(), *k))
        )
        notifier.send("finished", "NMC-01 finished", "", lambda *k: said.append((time.time(), *k)))
        assert notifier.drain(30)
    kinds = sorted((kind, message.split(":")[0]) for _, kind, message in said)
    assert kinds == [
        ("notified", "trip to json"),
        ("notify_failed", "finished to json"),
        ("notify_failed", "trip to json"),
    ]
    assert hook.titles() == ["NMC-01 TRIPPED"]  # once, on its second try
    delivered = next(t for t, kind, _ in said if kind == "notified")
    assert delivered < max(t for t, kind, _ in said if kind == "notify_failed")  # not queued behind the dead one


def _run(lab: Lab, text: str, out: Path) -> Runner:
    runner = Runner.start(
        parse(text), Binding("cycler", 101, daq="daq", probes={"temperature": Probe(101)}), out, Shared(lab)
    )
    runner.run()
    return runner


def test_a_run_tells_of_its_trip_its_end_and_a_nearly_full_disk_and_records_what_was_delivered(tmp_path):
    with webhook() as hook, VirtualLab(speed=5_000, dt=2.0) as v:
        data = v.lab_dict() | {"notify": {"disk_free_gb": 1e9, "to": [{"url": hook.url}]}}
        with Lab.from_dict(data, "virtual", v.clock) as lab:
            tripped = _run(lab, TRIP, tmp_path / "trip.h5")
            rested = _run(lab, REST, tmp_path / "rest.h5")
    titles = [t.split(" (virtual lab")[0] for t in hook.titles()]
    assert titles.count("cell-1 TRIPPED") == 1 and titles.count("cell-1 finished") == 1, titles
    assert titles.count("cell-1 disk nearly full") == 2, titles  # once per run
    trip = next(item for _, item in hook.items if "TRIPPED" in item["title"])
    assert trip["type"] == "failure" and "cycler voltage" in trip["message"]
    assert str(tripped.writer.path) in trip["message"]
    for runner, told in ((tripped, {"trip", "disk"}), (rested, {"finished", "disk"})):
        events = open_run(runner.writer.path).events
        delivered = events[events["kind"] == "notified"]["message"]
        assert {m.split(" ")[0] for m in delivered} == told
        assert (events["kind"] == "disk_low").sum() == 1


CAMPAIGN = """\
name: alerts
lab: lab.toml
notify:
  - {{url: "{hook}", events: [trip, stale, failed, campaign]}}
  - {{url: "{mail}", events: [trip, campaign]}}
defaults: {{cycler: cycler, daq: daq}}
cells:
  - {{id: TRIP-01, type: nmc811-5Ah, protocol: trip.yaml, channel: 101, probes: {{temperature: 101}}}}
  - {{id: REST-01, type: lfp-5Ah, protocol: rest.yaml, channel: 103, probes: {{temperature: 103}}}}
"""


def test_a_trip_in_a_live_campaign_reaches_a_webhook_and_a_mailbox_within_5_s(tmp_path):
    with webhook() as hook, mailbox() as mail, served_lab(tmp_path / "lab.toml", speed=5000, dt=2) as lab_file:
        (tmp_path / "trip.yaml").write_text(TRIP)
        (tmp_path / "rest.yaml").write_text(REST)
        (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(hook=hook.url, mail=mail.url))
        cellrig = Path(sys.executable).with_name("cellrig")
        done = subprocess.run(
            [str(cellrig), "campaign", str(tmp_path / "campaign.yaml"), "--out", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=600,
        )
        assert done.returncode != 0 or "tripped" in done.stdout, done.stdout + done.stderr
        wait_for(lambda: len(hook.items) == 2 and len(mail.items) == 2, "the trip and the campaign's end", 30)
        clock = tomllib.loads(lab_file.read_text())["clock"]
    run = open_run(next((tmp_path / "out").glob("*TRIP-01*.h5")))
    trip_at = run.events[run.events["kind"] == "trip"]["time"].iloc[0]  # run time, on the lab clock
    trip_wall = clock["origin"] + (float(run.meta["clock"]["started"]) + trip_at) / clock["speed"]
    for got in (hook, mail):
        (arrived, trip), (_, end) = got.items
        assert trip["title"].startswith("TRIP-01 TRIPPED ("), trip
        assert "cycler voltage" in trip["message"] and "TRIP-01_trip_" in trip["message"], trip
        print(f"the trip reached {got.url.split(':')[0]} {arrived - trip_wall:.2f} s after it happened")
        assert arrived - trip_wall < 5.0, f"the trip arrived {arrived - trip_wall:.2f} s after it happened"
        assert "was the last run of alerts: " in end["title"] and "1 tripped" in end["title"], end
        assert "1 finished" in end["title"]
    delivered = run.events[run.events["kind"] == "notified"]["message"].tolist()
    assert sum(m.startswith("trip to ") for m in delivered) == 2, delivered
