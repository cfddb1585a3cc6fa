"""The run engine (minimal): load a cycling protocol into a cycler, stream its log to a run file.

Every way out of :func:`run_cycling` (finished, cycler test failure, error, lost
instrument, Ctrl-C) puts the cycler in its safe state and records an ``end`` event saying
how and why the run ended.  Ctrl-C is held off while that happens.
"""

import contextlib
import datetime as dt
import getpass
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..instruments.keysight_bt2200 import KeysightBT2200, channel_index
from ..storage import Column, RunWriter
from .cycling import STEP_NAMES, STEPS_PER_CYCLE, CyclingProtocol

CYCLER_COLUMNS = {
    "voltage": Column("V", "f8", "cell voltage (mean over the interval since the previous row)"),
    "current": Column("A", "f8", "current, positive charging (mean over the interval since the previous row)"),
    "step": Column("", "i4", "step within the cycle (1 charge, 2 rest, 3 discharge, 4 rest)"),
    "cycle": Column("", "i4", "cycle number, from 1"),
}

Progress = Callable[[int, int], None]


def _sequence(cycler: KeysightBT2200, p: CyclingProtocol, seq: int = 1) -> None:
    """Program the whole protocol as one instrument sequence of 4 steps per cycle."""
    c, d = p.charge, p.discharge
    for cycle in range(p.cycles):
        base = cycle * STEPS_PER_CYCLE
        cycler.define_step(seq, base + 1, "CHARGE", c.max_time_s, c.current_A, c.voltage_V)
        cycler.define_test(seq, base + 1, 1, "CURR_LE", c.end_current_A, "AFTER", 0, "NEXT")
        cycler.define_step(seq, base + 2, "REST", max(p.rest_after_charge_s, 1), 0, 0)
        cycler.define_step(seq, base + 3, "DISCHARGE", d.max_time_s, d.current_A, d.voltage_V)
        cycler.define_test(seq, base + 3, 1, "VOLT_LE", d.voltage_V, "AFTER", 0, "NEXT")
        cycler.define_step(seq, base + 4, "REST", max(p.rest_after_discharge_s, 1), 0, 0)
    cycler.raise_errors()


@contextlib.contextmanager
def _hold_ctrl_c() -> Iterator[None]:
    """Defer SIGINT while the run closes; deliver it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


class _Recorder:
    """Turns data-log records of one channel into rows and step events."""

    def __init__(self, writer: RunWriter, protocol: CyclingProtocol, index: int) -> None:
        self.writer, self.protocol, self.index = writer, protocol, index
        self.t0: int | None = None
        self.state = 0
        self.last_time = 0.0
        self.ended = False

    def add(self, records: np.ndarray) -> None:
        state = records["seq_state"][:, self.index].astype(np.int64)
        keep = state != 0  # records before the sequence or after it ended belong to no step
        if self.state and not keep.all():
            self.ended = True  # the instrument logs on after the sequence: idle records mark its end
        if not keep.any():
            return
        records, state = records[keep], state[keep]
        if self.t0 is None:
            self.t0 = int(records["timestamp_ms"][0])
        t = (records["timestamp_ms"].astype(np.int64) - self.t0) / 1000.0
        number = np.abs(state)
        cycle, within = np.divmod(number - 1, STEPS_PER_CYCLE)
        for i in np.flatnonzero(np.diff(number, prepend=self.state)):
            self._step_change(int(number[i]), self.last_time if i == 0 else float(t[i - 1]))
        self.writer.append(
            "cycler",
            time=t,
            voltage=records["vsense"][:, self.index].astype(np.float64),
            current=records["imon"][:, self.index].astype(np.float64),
            step=(within + 1).astype(np.int32),
            cycle=(cycle + 1).astype(np.int32),
        )
        self.state, self.last_time = int(number[-1]), float(t[-1])

    def _step_change(self, number: int, at: float) -> None:
        if self.state:
            cycle, step, name = self.protocol.step(self.state)
            self.writer.event("step_end", name, time=at, step=step, cycle=cycle)
        cycle, step, name = self.protocol.step(number)
        self.writer.event("step_start", name, time=at, step=step, cycle=cycle)

    def finish(self) -> None:
        if self.state:
            cycle, step, name = self.protocol.step(self.state)
            self.writer.event("step_end", name, time=self.last_time, step=step, cycle=cycle)

    @property
    def cycle(self) -> int:
        return self.protocol.step(self.state)[0] if self.state else 0


def new_run_path(out_dir: str | Path, protocol: CyclingProtocol, cell_id: str) -> Path:
    """``<cell>_<protocol>_<UTC time>.h5`` in ``out_dir``, never the name of an existing file."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(out_dir) / f"{cell_id}_{protocol.name}_{stamp}"
    path, n = base.with_suffix(".h5"), 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}.h5")
    return path


def run_cycling(
    protocol: CyclingProtocol,
    cycler: KeysightBT2200,
    out_dir: str | Path,
    *,
    cell_id: str = "cell-1",
    bt_cell: int = 1001,
    channel: int = 101,
    lab: dict[str, Any] | None = None,
    poll_interval: float = 0.02,
    progress: Progress | None = None,
) -> Path:
    """Run ``protocol`` on one cycler channel, streaming to a new run file in ``out_dir``."""
    path = new_run_path(out_dir, protocol, cell_id)
    meta = {
        "protocol": {
            "name": protocol.name,
            "origin": protocol.origin,
            "text": protocol.source,
            "sha256": protocol.sha256,
        },
        "cell": {"id": cell_id, **asdict(protocol.cell)},
        "lab": lab or {},
        "cycler": {"cell": bt_cell, "channel": channel},
        "operator": getpass.getuser(),
        "host": socket.gethostname(),
    }
    cycler.clear()
    cycler.clear_log()
    cycler.define_cell(bt_cell, channel)
    _sequence(cycler, protocol)
    writer = RunWriter.create(path, {"cycler": CYCLER_COLUMNS}, meta, cycle_stream="cycler")
    recorder = _Recorder(writer, protocol, channel_index(channel))
    status, reason = "failed", "the engine stopped unexpectedly"
    try:
        cycler.enable(bt_cell, 1)
        cycler.initiate(bt_cell)
        cycler.raise_errors()
        writer.event("start", f"{protocol.name}: {protocol.cycles} cycles of {', '.join(STEP_NAMES)}")
        while not recorder.ended:  # the first idle record after the sequence ends the loop
            records = cycler.fetch_log()
            if len(records):
                recorder.add(records)
                if progress:
                    progress(recorder.cycle, protocol.cycles)
            elif cycler.cell_status(bt_cell)[0] != "running":
                while not recorder.ended and len(records := cycler.fetch_log()):  # the rest of the last step
                    recorder.add(records)
                break
            else:
                time.sleep(poll_interval)
        state = cycler.cell_status(bt_cell)[0]
        recorder.finish()
        status, reason = {
            "done": ("finished", None),
            "failed": ("tripped", f"cycler test failed in step {recorder.state}"),
            "aborted": ("aborted", "aborted at the instrument"),
        }.get(state, ("failed", f"cycler reported {state!r}"))
    except KeyboardInterrupt:
        status, reason = "aborted", "interrupted (Ctrl-C)"
        raise
    except Exception as exc:
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with _hold_ctrl_c():
            try:
                cycler.safe_state()
            except Exception as exc:  # the run must still close, and say so
                reason = f"{reason or status}; safe state NOT confirmed: {type(exc).__name__}: {exc}"
            writer.close(status, reason)
    return path
