"""``cellrig observe``: the operator's observation of an abuse test, recorded in its run file, decides
the criteria the standards judge by observation."""

import subprocess
import sys
from pathlib import Path

from cellrig.analysis.safety import abuse_result, passes
from cellrig.analysis.synthetic import SyntheticAbuse, write_abuse_run
from cellrig.storage import RunWriter, open_run

CELLRIG = Path(sys.executable).with_name("cellrig")
NOTHING = [
    "--fire",
    "no",
    "--explosion",
    "no",
    "--rupture",
    "no",
    "--venting",
    "no",
    "--smoke",
    "no",
    "--leakage",
    "no",
]


def observe(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CELLRIG), "observe", str(path), *args], capture_output=True, text=True, timeout=120)


def verdict(path: Path):
    info, result, _ = abuse_result(str(path))
    return passes(info["criteria"], result)


def test_an_observation_turns_a_provisional_verdict_into_pass_or_fail_and_leaves_the_status(tmp_path):
    path = tmp_path / "nail.h5"
    write_abuse_run(path, SyntheticAbuse(runaway=False, duration=4300.0, seed=2))
    assert verdict(path).passed is None  # signals alone: fire and explosion are not yet judged
    done = observe(path, "a wisp of smoke, no flame", *NOTHING)
    assert done.returncode == 0, done.stderr
    assert "observation recorded (none of fire, explosion, rupture, venting, smoke, leakage seen)" in done.stdout
    assert verdict(path).passed is True
    seen_fire = ["--fire", "yes", *NOTHING[2:]]
    assert observe(path, "flames from the vent at 14 s", *seen_fire).returncode == 0  # the last one counts
    judged = verdict(path)
    assert judged.passed is False and ("no fire", False, "observed: fire seen") in judged.criteria
    run = open_run(path)
    assert run.status == "finished"  # an observation after the end leaves how the run ended
    notes = run.events.query("kind == 'observation'")["message"].tolist()
    assert len(notes) == 2 and '"note": "flames from the vent at 14 s"' in notes[1] and '"fire": true' in notes[1]


def test_every_criterion_must_be_answered_and_a_live_run_without_an_engine_is_not_waited_for(tmp_path):
    path = tmp_path / "nail.h5"
    write_abuse_run(path, SyntheticAbuse(seed=3))
    missing = observe(path, *NOTHING[:-2])
    assert missing.returncode == 2 and "Missing option '--leakage'" in missing.stderr
    live = tmp_path / "live.h5"
    with RunWriter.create(live, {"daq": {}}, {}):  # a live run whose engine never polls
        refused = observe(live, "--timeout", "0.5", *NOTHING)
    assert refused.returncode == 1 and "not recorded within 0.5 s (is its engine alive?)" in refused.stderr
    assert "not taken; withdrawn" in refused.stderr and not Path(f"{live}.observation").exists()
    assert not open_run(live).events["kind"].eq("observation").any()
