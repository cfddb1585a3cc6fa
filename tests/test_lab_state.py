"""The safe-state readers of lab_state against a served virtual lab: they report what the instruments say."""

import tomllib

import pytest
from lab_state import ask, bt2200_running, espec_mode, f4t_output, rig_state, safe_states, smu_output

from cellrig.sim.process import served_lab

ROLES = ["cycler", "chamber", "chamber2", "smu", "rig"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The served lab's file and its roles' resources; the cycler's cell defined on channel 101, as cellrig does.

    At 50 × real time: with the cycler, both chambers and the SMU busy at once, the world keeps up.
    """
    with served_lab(tmp_path_factory.mktemp("served") / "lab.toml", speed=50) as path:
        resources = {role: entry["resource"] for role, entry in tomllib.loads(path.read_text())["roles"].items()}
        assert ask(resources["cycler"], "CELL:DEF 1001,(@101);*OPC?") == "1"
        yield path, resources


def test_the_readers_see_instruments_driven_out_of_their_safe_states_and_back(lab):
    lab_file, at = lab
    assert safe_states(lab_file, ROLES) == dict.fromkeys(ROLES, True)
    out = {
        "cycler": "SEQ:STEP:DEF 1,1,REST,86400,0,0;CELL:ENAB (@1001),1;CELL:INIT (@1001);*OPC?",
        "chamber2": ":OUTPUT1:STATE ON;*OPC?",
        "smu": ":OUTP ON;*OPC?",
        "rig": "HOLD 60;STOP;*OPC?",  # halted where it stood, not retracted (a still ram: no 10 kHz stepping)
    }
    for role, line in out.items():
        assert ask(at[role], line) == "1", role
    assert ask(at["chamber"], "MODE, CONSTANT", "\r\n") == "OK: MODE, CONSTANT"
    assert safe_states(lab_file, ROLES) == dict.fromkeys(ROLES, False)
    assert bt2200_running(at["cycler"], 101) and espec_mode(at["chamber"]) == "CONSTANT"
    assert f4t_output(at["chamber2"]) and smu_output(at["smu"]) and rig_state(at["rig"]) == "STOPPED"

    back = {"cycler": "CELL:ABOR (@1001);*OPC?", "chamber2": ":OUTPUT1:STATE OFF;*OPC?", "smu": ":OUTP OFF;*OPC?"}
    for role, line in {**back, "rig": "RETR 10;*OPC?"}.items():
        assert ask(at[role], line) == "1", role
    assert ask(at["chamber"], "MODE, STANDBY", "\r\n") == "OK: MODE, STANDBY"
    assert safe_states(lab_file, ROLES) == dict.fromkeys(ROLES, True)
    assert rig_state(at["rig"]) in ("RETRACTING", "IDLE") and espec_mode(at["chamber"]) == "STANDBY"


def test_what_cannot_be_told_is_said_not_guessed(lab):
    lab_file, at = lab
    states = safe_states(lab_file, ["daq"])
    assert states == {"daq": "no reader for keysight_daq970a"}
    with pytest.raises(LookupError, match="no cell 1002 defined on channel 102"):
        bt2200_running(at["cycler"], 102)
    assert ask(at["cycler"], "SYST:ERR?") == '-222,"Cell 1002 not defined"'  # the reader's question queued it
