"""One owner per run file and per instrument: lab-wide locks across real processes, on a served virtual lab."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_for

from cellrig import open_run
from cellrig.lab import Lab
from cellrig.lab_locks import InstrumentHeldError
from cellrig.sim.process import served_lab
from cellrig.storage import RunFileError

REST = """
name: rest
sample_interval: 2 s
steps:
  - set: 25 °C
  - rest: 4 h
"""
CYCLER_ROLES = ["--cycler", "cycler", "--chamber", "chamber", "--daq", "daq", "--probe", "temperature=101"]
HOLD = """
import sys
from cellrig.lab import Lab
lab = Lab.from_file(sys.argv[1])
lab.locks.claim(dict([lab.lock_key("cycler", 102)]), "run /elsewhere/held.h5")
print("held", flush=True)
sys.stdin.read()
"""


def _cellrig(*args: str) -> list[str]:
    return [sys.executable, "-m", "cellrig", *args]


def _resting(out: Path) -> Path | None:
    """The run file in ``out`` once its run is resting (everything opened, the file live), else None."""
    for path in out.glob("*.h5"):
        try:
            if "step_start" in open_run(path).events["kind"].tolist():
                return path
        except RunFileError:  # still being created
            pass
    return None


def test_a_lock_names_its_holder_and_dies_with_it(tmp_path):
    """A child holding a channel: a second claim is refused naming it; once it is killed (-9) the channel is free."""
    lab_file = tmp_path / "lab.toml"
    lab_file.write_text('[roles.cycler]\ndriver = "keysight_bt2200"\nresource = "TCPIP0::10.0.0.9::5025::SOCKET"\n')
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lab_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "held\n"
        lab = Lab.from_file(lab_file)
        assert lab.locks.directory == tmp_path / "lab.locks"
        with pytest.raises(InstrumentHeldError) as refused:
            lab.locks.claim(dict([lab.lock_key("cycler", 102)]), "run here.h5")
        said = str(refused.value)
        assert "cycler (TCPIP0::10.0.0.9::5025::SOCKET channel 102)" in said
        assert f"run /elsewhere/held.h5 (host {socket.gethostname()}, pid {child.pid})" in said
        lab.locks.claim(dict([lab.lock_key("cycler", 101)]), "run here.h5").release()  # another channel is free
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    claim = lab.locks.claim(dict([lab.lock_key("cycler", 102)]), "run here.h5")  # the kernel let go of it
    claim.release()
    assert list((tmp_path / "lab.locks").iterdir())  # lock files stay (removing one would let two in)


def test_a_second_process_asking_for_a_held_channel_is_refused_before_anything_moves(tmp_path):
    """Two `cellrig run` on one served lab and one channel: the second is refused naming the first's run file,
    host and pid, writes no run file and opens nothing; nor can `cellrig resume` take the live run, even with
    the note beside it deleted; once the first has ended, the channel is free."""
    protocol = tmp_path / "rest.yaml"
    protocol.write_text(REST)
    with served_lab(tmp_path / "lab.toml", speed=100) as lab_file:
        run = [*_cellrig("run", str(protocol), "--lab", str(lab_file), "--cell-type", "nmc811-5Ah"), *CYCLER_ROLES]
        first = subprocess.Popen([*run, "--out", str(tmp_path / "first")], stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: first.poll() is not None or _resting(tmp_path / "first") is not None, "the first run")
            assert first.poll() is None, first.stderr.read()
            path = _resting(tmp_path / "first")
            second = subprocess.run([*run, "--out", str(tmp_path / "second")], capture_output=True, text=True)
            assert second.returncode == 1, second.stderr
            said = " ".join(second.stderr.split())
            assert "cycler (TCPIP0::127.0.0.1::" in said and "channel 101) is in use by run" in said
            assert f"{path.name} (host {socket.gethostname()}, pid {first.pid}); nothing was started" in said
            assert not (tmp_path / "second").exists()  # no run file, not even its folder
            Path(f"{path}.writer").unlink()  # the note of who writes decides nothing
            resumed = subprocess.run(_cellrig("resume", str(path)), capture_output=True, text=True)
            assert resumed.returncode == 1 and "only interrupted or stopped runs resume" in resumed.stderr
            assert open_run(path).status == "running" and "resume" not in open_run(path).events["kind"].tolist()
            stop = subprocess.run(_cellrig("stop", str(path)), capture_output=True, text=True)
            assert stop.returncode == 0, stop.stderr
            assert first.wait(timeout=60) == 0
        finally:
            if first.poll() is None:
                first.kill()
        assert open_run(path).status == "stopped"
        lab = Lab.from_file(lab_file)  # the first run ended: its instruments are free again
        lab.locks.claim(dict([lab.lock_key("cycler", 101), lab.lock_key("chamber")]), "a test").release()


def test_a_campaign_refuses_two_of_its_cells_on_one_channel(tmp_path):
    from cellrig.protocols import campaign as campaigns
    from cellrig.protocols.engine import PreflightError

    lab_file = tmp_path / "lab.toml"
    lab_file.write_text(
        '[roles.cycler]\ndriver = "keysight_bt2200"\nresource = "TCPIP0::10.0.0.9::5025::SOCKET"\n'
        '[roles.chamber]\ndriver = "espec"\nresource = "TCPIP0::10.0.0.8::57732::SOCKET"\n'
    )
    (tmp_path / "c.yaml").write_text(
        "name: twice\nlab: lab.toml\ndefaults: {protocol: capacity, cycler: cycler, chamber: chamber}\n"
        "cells:\n  - {id: A, type: nmc811-5Ah, channel: 101}\n  - {id: B, type: nmc811-5Ah, channel: 101}\n"
        "  - {id: C, type: nmc811-5Ah, channel: 102}\n"
    )
    plan = campaigns.load_campaign(tmp_path / "c.yaml")
    with pytest.raises(PreflightError) as refused:
        campaigns.start(plan, tmp_path / "out")
    assert refused.value.problems == [
        "B: cycler (TCPIP0::10.0.0.9::5025::SOCKET channel 101) is already A's (one run per channel or rig)"
    ]
    assert not (tmp_path / "out").exists() and not os.path.exists(tmp_path / "lab.locks")
