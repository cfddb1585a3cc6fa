"""KeysightBT2200: every command it sends (expected_protocol), validators, and the binary data log."""

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from cellrig.instruments._connection import InstrumentError
from cellrig.instruments.keysight_bt2200 import COMMANDS, KeysightBT2200, Verbose, channel_index, record_dtype
from cellrig.instruments.roles import CyclerLimits, CyclerStep

NO_ERROR = ("SYST:ERR?", '+0,"No error"')


def block(payload: bytes) -> bytes:
    size = str(len(payload))
    return f"#{len(size)}{size}".encode() + payload


def test_define_cell():
    with expected_protocol(KeysightBT2200, [("CELL:DEF 1001,(@101)", None)]) as bt:
        bt.define_cell(1001, 101)


def test_define_step_and_test():
    with expected_protocol(
        KeysightBT2200,
        [
            ("SEQ:STEP:DEF 1,2,CHARGE,3600,1,4.2", None),
            ("SEQ:TEST:DEF 1,2,1,CURR_LE,0.01,BEFORE,40,FAIL", None),
        ],
    ) as bt:
        bt.define_step(1, 2, "CHARGE", 3600, 1.0, 4.2)
        bt.define_test(1, 2, 1, "CURR_LE", 0.01, "BEFORE", 40, "FAIL")


def test_enable_initiate_abort_clear():
    with expected_protocol(
        KeysightBT2200,
        [
            ("CELL:ENABLE (@1001,1002),1", None),
            ("CELL:INIT (@1001)", None),
            ("CELL:ABORT 0", None),
            ("CELL:ABORT 0", None),
            ("CELL:CLEAR 0", None),
            ("SEQ:CLEAR 0", None),
            ("DATA:LOG:CLE", None),
        ],
    ) as bt:
        bt.enable([1001, 1002], 1)
        bt.initiate(1001)
        bt.abort()
        bt.clear()
        bt.clear_log()


def test_status_output_and_log_count():
    with expected_protocol(
        KeysightBT2200,
        [
            ("STAT:CELL:REP? (@1001,1002,1003,1004,1005)", "0,1,2,3,4"),
            ("OUTP 0", None),
            ("OUTP?", "1"),
            ("DATA:LOG:REC:AVA?", "17"),
        ],
    ) as bt:
        assert bt.cell_status([1001, 1002, 1003, 1004, 1005]) == ["none", "running", "fail", "aborted", "ok"]
        bt.output_enabled = False
        assert bt.output_enabled is True
        assert bt.log_records_available == 17


def test_a_status_code_outside_the_public_set_raises_naming_the_code():
    with (
        expected_protocol(KeysightBT2200, [("STAT:CELL:REP? (@1001)", "7")]) as bt,
        pytest.raises(InstrumentError, match="code 7"),
    ):
        bt.cell_status(1001)


def test_rest_is_sent_as_the_public_example_shows():
    with expected_protocol(KeysightBT2200, [("SEQ:STEP:DEF 1,1,REST,300", None)]) as bt:
        bt.define_step(1, 1, "REST", 300)
    with expected_protocol(KeysightBT2200, []) as bt, pytest.raises(ValueError):
        bt.define_step(1, 1, "REST", 300, 0.0, 0.0)


def test_safe_state_aborts_and_switches_outputs_off():
    with expected_protocol(KeysightBT2200, [("CELL:ABORT 0", None), ("OUTP 0", None)]) as bt:
        bt.safe_state()


def test_fetch_log_parses_the_binary_block():
    rec = np.zeros(2, record_dtype(32))
    rec["timestamp_ms"] = [10, 11000]  # 10 = 0x0A, the terminator byte
    rec["imon"][:, 0] = [5.0, -5.0]
    rec["vsense"][:, 0] = [3.7, 4.2]
    rec["seq_state"][:, 0] = [1, 2]
    rec["cell_id"][:, 0] = 1001
    payload = np.int32(2).tobytes() + rec.tobytes()
    assert b"\n" in payload  # the block must be read by length, not up to a terminator
    with expected_protocol(KeysightBT2200, [("DATA:LOG?", block(payload) + b"\n")]) as bt:
        got = bt.fetch_log()
    np.testing.assert_array_equal(got["imon"][:, 0], [5.0, -5.0])
    np.testing.assert_array_equal(got["seq_state"][:, 0], [1, 2])
    assert got["timestamp_ms"].tolist() == [10, 11000]


def test_fetch_log_with_no_records():
    with expected_protocol(KeysightBT2200, [("DATA:LOG?", block(np.int32(0).tobytes()) + b"\n")]) as bt:
        assert len(bt.fetch_log()) == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda bt: bt.define_step(1, 1, "CHARGE", 3600, 7.0, 4.2),  # above the 6.25 A channel rating
        lambda bt: bt.define_step(1, 1, "CHARGE", 3600, 1.0, 5.5),  # above 5 V
        lambda bt: bt.define_step(1, 1, "BOOST", 3600, 1.0, 4.2),  # no such mode
        lambda bt: bt.define_test(1, 1, 1, "TEMP_GE", 60, "AFTER", 0, "FAIL"),
        lambda bt: bt.define_cell(999, 101),
        lambda bt: bt.define_cell(1001, 901),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(call):
    with expected_protocol(KeysightBT2200, []) as bt, pytest.raises(ValueError):
        call(bt)


def test_channel_index():
    assert channel_index(101) == 0 and channel_index(132) == 31 and channel_index(201) == 32
    with pytest.raises(ValueError, match="slot"):
        channel_index(133)


def guarded(steps: list[tuple[str, str | None]]) -> list[tuple[str, str | bytes | None]]:
    """What a channel on 101 sends to be defined, then to start a step (``steps``: its SEQ lines)."""
    empty = block(np.int32(0).tobytes()) + b"\n"
    return [
        ("CELL:DEF 1001,(@101)", None),
        NO_ERROR,
        ("DATA:LOG?", empty),
        ("SEQ:CLEAR 1", None),
        *steps,
        ("CELL:ENABLE (@1001),1", None),
        ("CELL:INIT (@1001)", None),
        NO_ERROR,
    ]


LIMITS = CyclerLimits(2.5, 4.2, 5.0)  # the virtual lab's channel


@pytest.mark.parametrize(
    ("step", "sent"),
    [
        (  # the limits well away from the step's own levels: every test at its limit
            CyclerStep("cc", 3600, current=2.5, until_voltage_above=4.1),
            [
                ("SEQ:STEP:DEF 1,1,CHARGE,3600,2.5,4.1", None),
                ("SEQ:TEST:DEF 1,1,1,VOLT_GE,4.1,AFTER,0,NEXT", None),
                ("SEQ:TEST:DEF 1,1,2,VOLT_GE,4.25,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,3,VOLT_LE,2.45,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,4,CURR_GE,5.25,AFTER,0,FAIL", None),
            ],
        ),
        (  # a CC-CV charge holding 4.245 V, 5 mV under the limit: its voltage test 10 mV above the hold
            CyclerStep("cccv", 3600, current=5.25, voltage=4.245, until_current_below=0.25),
            [
                ("SEQ:STEP:DEF 1,1,CHARGE,3600,5.25,4.245", None),
                ("SEQ:TEST:DEF 1,1,1,CURR_LE,0.25,AFTER,0,NEXT", None),
                ("SEQ:TEST:DEF 1,1,2,VOLT_GE,4.255,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,3,VOLT_LE,2.45,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,4,CURR_GE,5.27,AFTER,0,FAIL", None),
            ],
        ),
        (  # a discharge to the lower limit: its test 10 mV below its end
            CyclerStep("cc", 3600, current=-1.0, until_voltage_below=2.45),
            [
                ("SEQ:STEP:DEF 1,1,DISCHARGE,3600,1,2.45", None),
                ("SEQ:TEST:DEF 1,1,1,VOLT_LE,2.45,AFTER,0,NEXT", None),
                ("SEQ:TEST:DEF 1,1,2,VOLT_GE,4.25,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,3,VOLT_LE,2.44,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,4,CURR_GE,5.25,AFTER,0,FAIL", None),
            ],
        ),
        (  # a rest: voltage only
            CyclerStep("rest", 600),
            [
                ("SEQ:STEP:DEF 1,1,REST,600", None),
                ("SEQ:TEST:DEF 1,1,1,VOLT_GE,4.25,AFTER,0,FAIL", None),
                ("SEQ:TEST:DEF 1,1,2,VOLT_LE,2.45,AFTER,0,FAIL", None),
            ],
        ),
    ],
)
def test_a_guarded_channel_fails_every_step_at_the_runs_limits(step, sent):
    with expected_protocol(KeysightBT2200, guarded(sent)) as bt:
        ch = bt.channel(101, CyclerLimits(2.4, 4.25, 6.0))
        ch.guard(voltage_min=2.45, voltage_max=4.25, current_max=5.25)
        ch.start_step(step)


def test_limits_the_channel_cannot_test_are_left_out():
    """An abuse test's unset limits, and limits beyond the channel's 0–5 V and 6.25 A: no test is sent."""
    sent = [("SEQ:STEP:DEF 1,1,DISCHARGE,60,5,0", None)]
    with expected_protocol(KeysightBT2200, guarded(sent)) as bt:
        ch = bt.channel(101, CyclerLimits(0.0, 4.2, 5.0))
        ch.guard(voltage_min=-1.0, voltage_max=5.5, current_max=None)
        ch.start_step(CyclerStep("cc", 60, current=-5.0))
    with expected_protocol(KeysightBT2200, [("CELL:DEF 1001,(@101)", None), NO_ERROR]) as bt:
        ch = bt.channel(101)
        with pytest.raises(ValueError, match="not below"):
            ch.guard(voltage_min=4.0, voltage_max=3.0)
        with pytest.raises(ValueError, match="no number"):
            ch.guard(current_max=float("nan"))


def test_verbose_status_names_the_failed_test_and_the_channel_maps_it_to_its_guard():
    steps = [
        ("SEQ:STEP:DEF 1,1,CHARGE,3600,2.5,4.2", None),
        ("SEQ:TEST:DEF 1,1,1,VOLT_GE,4.2,AFTER,0,NEXT", None),
        ("SEQ:TEST:DEF 1,1,2,VOLT_GE,3.9,AFTER,0,FAIL", None),
    ]
    replies = [
        ("STAT:CELL:VERB? 1001", "IDLE,1,1,3.712,0.000,FAIL,2,VOLT_GE,3.9,3.9004"),
        ("STAT:CELL:VERB? 1001", "IDLE,1,1,3.712,0.000,FAIL,1,VOLT_GE,4.2,4.2001"),  # the step's own test
        ("STAT:CELL:VERB? 1001", "IDLE,1,1,4.2,0.0,OK"),  # no test fields: none failed
    ]
    with expected_protocol(KeysightBT2200, guarded(steps) + replies) as bt:
        ch = bt.channel(101, LIMITS)
        ch.guard(voltage_max=3.9)
        ch.start_step(CyclerStep("cc", 3600, current=2.5, until_voltage_above=4.2))
        ours, other, none = ch.failure(), ch.failure(), ch.failure()
    assert ours.guard is not None
    assert (ours.guard.signal, ours.guard.word, ours.guard.limit) == ("voltage", "above", 3.9)
    assert ours.measured == pytest.approx(3.9004) and ours.test == 2
    assert other.guard is None and other.kind == "VOLT_GE" and other.test == 1
    assert none is None


def test_a_garbled_verbose_reply_raises_naming_it():
    assert Verbose.parse("RUNNING,1,1,3.7,2.5,NONE").test == 0
    with (
        expected_protocol(KeysightBT2200, [("STAT:CELL:VERB? 1001", "RUNNING,1")]) as bt,
        pytest.raises(InstrumentError, match="fewer than 6 fields"),
    ):
        bt.cell_verbose(1001)


def test_every_limit_test_command_is_in_the_commands_table():
    said = {c.text for c in COMMANDS}
    for text in (
        "SEQ:TEST:DEF <seq>,<step>,<n>,VOLT_GE,<V>,AFTER,0,FAIL",
        "SEQ:TEST:DEF <seq>,<step>,<n>,VOLT_LE,<V>,AFTER,0,FAIL",
        "SEQ:TEST:DEF <seq>,<step>,<n>,CURR_GE,<A>,AFTER,0,FAIL",
        "STAT:CELL:VERB? <cell>",
    ):
        assert text in said, text


def test_limit_test_levels_go_to_the_microvolt_rounded_outwards():
    """``:g`` would send 3.8039455 as 3.80395 and 2.4500004 as 2.45: a test just inside the limit."""
    sent = [
        ("SEQ:STEP:DEF 1,1,CHARGE,60,1,4.2", None),
        ("SEQ:TEST:DEF 1,1,1,VOLT_GE,3.803946,AFTER,0,FAIL", None),
        ("SEQ:TEST:DEF 1,1,2,VOLT_LE,2.45,AFTER,0,FAIL", None),
        ("SEQ:TEST:DEF 1,1,3,CURR_GE,2.000001,AFTER,0,FAIL", None),
    ]
    with expected_protocol(KeysightBT2200, guarded(sent)) as bt:
        ch = bt.channel(101, LIMITS)
        ch.guard(voltage_min=2.4500004, voltage_max=3.8039455, current_max=2.0000001)
        ch.start_step(CyclerStep("cc", 60, current=1.0))
