"""Faults injected at run time into a virtual lab that another process serves, through its control line."""

import math
import re
import subprocess
import sys
import tomllib

import pytest
from lab_state import ask, sim_pids
from waiting import wait_for

from cellrig.lab import Lab
from cellrig.sim.lab import ROLES
from cellrig.sim.process import inject, served_lab

OVERLOADED = "+9.90000000E+37"  # the DAQ970A's overload value, as it formats a reading


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory):
    with served_lab(tmp_path_factory.mktemp("served") / "lab.toml") as path:
        yield path


def resource(lab_file, role: str) -> str:
    return tomllib.loads(lab_file.read_text())["roles"][role]["resource"]


def test_the_lab_file_names_the_control_line_and_cellrig_takes_the_file_as_it_is(lab_file):
    assert re.fullmatch(r"127\.0\.0\.1:\d+", tomllib.loads(lab_file.read_text())["virtual"]["control"])
    assert set(Lab.from_file(lab_file).roles) == set(ROLES)


def test_a_nan_fault_makes_the_next_matching_queries_answer_nan(lab_file):
    chamber = resource(lab_file, "chamber")
    assert all(math.isfinite(float(x)) for x in ask(chamber, "TEMP?", "\r\n").split(","))
    inject(lab_file, "chamber", "nan", count=2, match="TEMP?")
    assert ask(chamber, "MODE?", "\r\n") == "STANDBY"  # not matching: answered as ever
    assert ask(chamber, "TEMP?", "\r\n") == "NAN,NAN,NAN,NAN"
    assert ask(chamber, "TEMP?", "\r\n") == "NAN,NAN,NAN,NAN"
    assert all(math.isfinite(float(x)) for x in ask(chamber, "TEMP?", "\r\n").split(","))


@pytest.fixture
def scanning(lab_file):
    """The served DAQ970A scanning channel 101 every second of lab time, readings with their channel."""
    daq = resource(lab_file, "daq")
    assert ask(daq, "CONF:TEMP TC,K,(@101);FORM:READ:CHAN ON;TRIG:SOUR TIM;TRIG:TIM 1;TRIG:COUN INF;INIT;*OPC?") == "1"
    wait_for(lambda: int(ask(daq, "DATA:POIN?")) >= 2, "two readings")
    yield daq
    assert ask(daq, "ABOR;*OPC?") == "1"


def test_a_nan_fault_overloads_a_loggers_readings_and_keeps_their_channels(lab_file, scanning):
    inject(lab_file, "daq", "nan", match="DATA:REM? 2")  # a match with a space in it
    assert ask(scanning, "DATA:REM? 2") == f"{OVERLOADED},101,{OVERLOADED},101"
    value, channel = ask(scanning, "DATA:REM? 1").split(",")
    assert math.isfinite(float(value)) and channel == "101"


def test_a_stalled_logger_answers_but_its_reading_count_stays_until_the_stall_ends(lab_file, scanning):
    inject(lab_file, "daq", "stall", count=3, match="DATA:POIN")
    stalled = [int(ask(scanning, "DATA:POIN?")) for _ in range(3)]
    assert stalled == stalled[:1] * 3
    wait_for(lambda: int(ask(scanning, "DATA:POIN?")) > stalled[0], "the scan to go on")


@pytest.mark.parametrize(
    ("role", "kind", "count", "reason"),
    [
        ("cycler", "stall", 1, "BT2200 has no scan to stall"),
        ("oven", "nan", 1, "no role 'oven' in the virtual lab"),
        ("daq", "melt", 1, "unknown fault 'melt'"),
        ("daq", "nan", -1, "count '-1' is not a whole number"),
    ],
)
def test_the_control_line_refuses_what_it_cannot_play_and_says_why(lab_file, role, kind, count, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        inject(lab_file, role, kind, count)


def test_cellrig_sim_refuses_a_planned_stall_on_an_instrument_that_does_not_scan():
    out = subprocess.run(
        [sys.executable, "-m", "cellrig", "sim", "--fault", "cycler:stall"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "BT2200 has no scan to stall" in out.stderr


PARENT = """
import sys, threading
from cellrig.sim.process import served_lab
with served_lab(sys.argv[1]):
    print("up", flush=True)
    threading.Event().wait()
"""


def test_a_served_lab_ends_with_the_process_that_started_it_even_after_kill_9(tmp_path):
    lab_file = tmp_path / "lab.toml"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(lab_file)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "up"
    assert len(sim_pids(lab_file)) == 1
    parent.kill()
    parent.wait()
    wait_for(lambda: not sim_pids(lab_file), "the orphaned virtual lab to stop", timeout=60)
