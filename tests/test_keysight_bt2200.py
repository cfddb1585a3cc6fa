"""KeysightBT2200: every command it sends (expected_protocol), validators, and the binary data log."""

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from cellrig.instruments._connection import InstrumentError
from cellrig.instruments.keysight_bt2200 import KeysightBT2200, channel_index, record_dtype


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
