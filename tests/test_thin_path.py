"""The thin path end to end: virtual BT2200 → VISA socket → driver → engine → run file → summary."""

import numpy as np
import pytest

from cellrig import open_run
from cellrig.analysis import cycle_summary
from cellrig.instruments.keysight_bt2200 import KeysightBT2200
from cellrig.instruments.sim import virtual_cycler
from cellrig.instruments.sim.bt2200 import ABORTED, DONE
from cellrig.protocols import builtin_protocol, run_cycling


@pytest.fixture
def lab():
    with virtual_cycler(speed=50_000) as lab:
        lab.cycler = KeysightBT2200(lab.resource, visa_library="@py", timeout=1000)
        yield lab
        lab.cycler.adapter.close()


def test_cycles_stream_to_a_run_file_and_summarise(lab, tmp_path):
    protocol = builtin_protocol().with_cycles(3)
    path = run_cycling(protocol, lab.cycler, tmp_path, cell_id="NMC-7")
    run = open_run(path)
    assert run.status == "finished" and run.end_reason is None
    assert run.meta["cell"]["id"] == "NMC-7" and run.meta["protocol"]["sha256"] == protocol.sha256
    ds = run["cycler"]
    assert sorted(set(ds["cycle"].values.tolist())) == [1, 2, 3]
    assert run.cycle_index["cycle"].tolist() == [1, 2, 3]
    assert np.all(np.diff(ds["time"].values) > 0)
    ev = run.events
    starts = ev[ev["kind"] == "step_start"]
    assert starts["message"].tolist() == ["charge", "rest_after_charge", "discharge", "rest_after_discharge"] * 3
    assert starts["cycle"].tolist() == [c for c in (1, 2, 3) for _ in range(4)]

    table = cycle_summary(run)
    capacity = lab.sim.channels[101].cell.capacity_ah
    assert table["discharge_capacity"].between(0.97 * capacity, capacity).all()
    assert table["coulombic_efficiency"].between(0.98, 1.0).all()
    assert table["energy_efficiency"].between(0.85, 1.0).all()
    # the instrument was left safe: outputs off, channel no longer driving the cell
    assert lab.sim.output is False and lab.sim.channels[101].status == DONE


@pytest.mark.parametrize(
    ("interrupt", "status", "reason"),
    [
        (KeyboardInterrupt(), "aborted", "interrupted (Ctrl-C)"),
        (RuntimeError("operator pulled the plug"), "failed", "RuntimeError: operator pulled the plug"),
    ],
)
def test_every_way_out_leaves_the_cycler_safe_and_says_why(lab, tmp_path, interrupt, status, reason):
    def progress(cycle: int, total: int) -> None:
        if cycle >= 2:
            raise interrupt

    with pytest.raises(type(interrupt)):
        run_cycling(builtin_protocol().with_cycles(5), lab.cycler, tmp_path, progress=progress)
    run = open_run(next(tmp_path.glob("*.h5")))
    assert (run.status, run.end_reason) == (status, reason)
    assert run["cycler"]["cycle"].values.max() == 2
    assert lab.sim.output is False and lab.sim.channels[101].status == ABORTED


def test_a_lost_cycler_ends_the_run_failed_and_says_safe_state_is_unconfirmed(lab, tmp_path):
    def progress(cycle: int, total: int) -> None:
        if cycle >= 2:
            lab.server.stop()  # the instrument drops off the network mid-run

    with pytest.raises(Exception):  # noqa: B017 - whatever pyvisa raises for a dead socket
        run_cycling(builtin_protocol().with_cycles(5), lab.cycler, tmp_path, progress=progress)
    run = open_run(next(tmp_path.glob("*.h5")))
    assert run.status == "failed"
    assert "safe state NOT confirmed" in run.end_reason
    assert run.rows("cycler") > 0


def test_two_runs_never_share_a_file(lab, tmp_path):
    p = builtin_protocol().with_cycles(1)
    first = run_cycling(p, lab.cycler, tmp_path)
    second = run_cycling(p, lab.cycler, tmp_path)
    assert first != second and open_run(first).status == open_run(second).status == "finished"


def test_a_dropped_connection_and_a_lost_reply_mid_run_are_recovered_without_losing_the_run(lab, tmp_path):
    faults = iter(
        [
            lambda: lab.server.drop_connections(),  # the cycler's socket goes away ...
            lambda: lab.sim.inject("timeout", match="DATA:LOG?"),  # ... a query goes unanswered ...
            lambda: lab.sim.inject("drop", match="DATA:LOG?"),  # ... the link drops as a query arrives
        ]
    )

    def progress(cycle: int, total: int) -> None:
        if cycle >= 2:
            next(faults, lambda: None)()

    path = run_cycling(builtin_protocol().with_cycles(4), lab.cycler, tmp_path, progress=progress)
    run = open_run(path)
    assert run.status == "finished"
    table = cycle_summary(run)
    assert table["cycle"].tolist() == [1, 2, 3, 4]
    capacity = lab.sim.channels[101].cell.capacity_ah
    assert table["discharge_capacity"].between(0.97 * capacity, capacity).all()
    gaps = np.diff(run["cycler"]["time"].values)
    assert gaps.min() > 0 and gaps.max() <= lab.sim.log_period + 1e-9  # no record went missing
