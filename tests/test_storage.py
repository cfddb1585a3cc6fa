"""The run file: writing, reading, layout conventions and every error the user can meet."""

import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest
import xarray as xr

import cellrig
from cellrig.storage import (
    Column,
    ColumnError,
    NotARunFileError,
    RunClosedError,
    RunExistsError,
    RunNotFoundError,
    RunWriter,
    UnknownStreamError,
    WriterAliveError,
    open_run,
    writer_alive,
)

CYCLER = {"voltage": Column("V"), "current": Column("A"), "step": Column("", "i4"), "cycle": Column("", "i4")}
META = {
    "protocol": {"name": "demo", "text": "cycles: 3\n", "sha256": "ab" * 32},
    "cell": {"id": "C-001", "chemistry": "NMC811/graphite", "nominal_capacity_Ah": 5.0, "mass_g": 69.5},
    "lab": {"cycler": {"model": "BT2200", "resource": "TCPIP0::1.2.3.4::5025::SOCKET"}},
    "operator": "lab",
    "tags": ["a", "b"],
    "note": None,
}


def new_run(tmp_path, name="run.h5", **kwargs) -> RunWriter:
    return RunWriter.create(
        tmp_path / name, {"cycler": CYCLER, "daq": {"t_cell": Column("degC")}}, META, cycle_stream="cycler", **kwargs
    )


def test_rows_single_and_batched_read_back_exactly(tmp_path):
    rng = np.random.default_rng(1)
    v = rng.uniform(3.0, 4.2, 50_000)
    with new_run(tmp_path) as w:
        for i in range(10):
            w.append("cycler", time=float(i), voltage=float(v[i]), current=1.5, step=1, cycle=1)
        t = np.arange(10, 50_000, dtype=float)
        w.append(
            "cycler",
            time=t,
            voltage=v[10:],
            current=np.full(len(t), -1.5),
            step=np.full(len(t), 3),
            cycle=np.full(len(t), 2),
        )
        w.append("daq", time=0.5, t_cell=25.0)
    ds = open_run(tmp_path / "run.h5")["cycler"]
    assert ds.sizes == {"time": 50_000}
    np.testing.assert_array_equal(ds["time"].values, np.arange(50_000.0))
    np.testing.assert_array_equal(ds["voltage"].values, v)
    assert ds["step"].dtype == np.int32 and ds["cycle"].values[-1] == 2
    assert ds["current"].values[:10].tolist() == [1.5] * 10
    assert ds["voltage"].attrs["units"] == "V" and ds["time"].attrs["units"] == "s"


def test_layout_has_dimension_scales_units_and_opens_in_xarray_directly(tmp_path):
    with new_run(tmp_path) as w:
        w.append(
            "cycler",
            time=np.arange(5.0),
            voltage=np.full(5, 3.7),
            current=np.ones(5),
            step=np.ones(5, "i4"),
            cycle=np.ones(5, "i4"),
        )
    path = tmp_path / "run.h5"
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "cellrig-run/1"
        assert f["streams/cycler/time"].is_scale
        assert f["streams/cycler/voltage"].dims[0][0].name == "/streams/cycler/time"
        assert f["streams/cycler/current"].attrs["units"] == "A"
        assert list(f["streams/cycler"]) == ["time", "voltage", "current", "step", "cycle"]  # declared order
    ds = xr.open_dataset(path, group="streams/cycler", engine="h5netcdf")
    assert dict(ds.sizes) == {"time": 5} and "time" in ds.coords
    assert ds["voltage"].attrs["units"] == "V"
    np.testing.assert_array_equal(ds["voltage"].values, np.full(5, 3.7))
    ds.close()


def test_meta_round_trips_nested(tmp_path):
    new_run(tmp_path).close()
    run = cellrig.open_run(tmp_path / "run.h5")
    assert run.meta == META
    assert run.attrs["cellrig_version"] == cellrig.__version__
    assert run.attrs["started"].endswith("+00:00")


def test_events_and_end_status(tmp_path):
    w = new_run(tmp_path)
    w.append("cycler", time=12.5, voltage=3.7, current=1.0, step=1, cycle=1)
    w.event("step_start", "charge", step=1, cycle=1)
    w.event("note", "operator checked the tabs", time=3.0)
    w.close("tripped", "cell temperature 61.2 degC > 60 degC")
    run = open_run(tmp_path / "run.h5")
    ev = run.events
    assert ev["kind"].tolist() == ["step_start", "note", "end"]
    assert ev["time"].tolist() == [12.5, 3.0, 12.5]  # default time: the latest row
    assert (ev.loc[0, "step"], ev.loc[0, "cycle"]) == (1, 1)
    assert run.status == "tripped"
    assert run.end_reason == "cell temperature 61.2 degC > 60 degC"
    assert not (tmp_path / "run.h5.writer").exists()


@pytest.mark.parametrize(
    ("raised", "status", "reason"),
    [
        (RuntimeError("chamber lost"), "failed", "RuntimeError: chamber lost"),
        (KeyboardInterrupt(), "aborted", "interrupted (Ctrl-C)"),
    ],
)
def test_leaving_the_block_by_an_exception_records_why(tmp_path, raised, status, reason):
    with pytest.raises(type(raised)), new_run(tmp_path) as w:
        w.append("cycler", time=1.0, voltage=3.7, current=1.0, step=1, cycle=1)
        raise raised
    run = open_run(tmp_path / "run.h5")
    assert (run.status, run.end_reason) == (status, reason)
    assert run.rows("cycler") == 1


def test_cycle_index_marks_first_row_of_each_cycle(tmp_path):
    with new_run(tmp_path) as w:
        for i, c in enumerate([1, 1, 2]):
            w.append("cycler", time=float(i), voltage=3.7, current=1.0, step=1, cycle=c)
        cycles = np.array([2, 2, 3, 3, 3, 5])
        w.append(
            "cycler",
            time=np.arange(3.0, 9.0),
            voltage=np.full(6, 3.7),
            current=np.ones(6),
            step=np.ones(6, "i4"),
            cycle=cycles,
        )
    idx = open_run(tmp_path / "run.h5").cycle_index
    assert idx["cycle"].tolist() == [1, 2, 3, 5]
    assert idx["first_row"].tolist() == [0, 2, 5, 8]


def test_refuses_to_overwrite(tmp_path):
    new_run(tmp_path).close()
    before = (tmp_path / "run.h5").read_bytes()
    with pytest.raises(RunExistsError, match="never overwritten"):
        new_run(tmp_path)
    (tmp_path / "other.txt").write_text("not a run")
    with pytest.raises(RunExistsError):
        RunWriter.create(tmp_path / "other.txt", {"s": {}})
    assert (tmp_path / "run.h5").read_bytes() == before
    assert (tmp_path / "other.txt").read_text() == "not a run"


def test_missing_file(tmp_path):
    with pytest.raises(RunNotFoundError, match="no such run file"):
        open_run(tmp_path / "nope.h5")


def test_not_a_run_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotARunFileError, match="not an HDF5 file"):
        open_run(tmp_path / "notes.txt")
    with h5py.File(tmp_path / "plain.h5", "w", libver="latest") as f:
        f["x"] = [1, 2]
    with pytest.raises(NotARunFileError, match="not a cellrig run file"):
        open_run(tmp_path / "plain.h5")
    with pytest.raises(NotARunFileError, match="not a cellrig run file"):
        RunWriter.resume(tmp_path / "plain.h5")


def test_unknown_stream(tmp_path):
    w = new_run(tmp_path)
    with pytest.raises(UnknownStreamError, match=r"unknown stream 'chamber' .*declared: cycler, daq"):
        w.append("chamber", time=0.0, temperature=25.0)
    w.close()
    with pytest.raises(UnknownStreamError, match="unknown stream 'rig'"):
        open_run(tmp_path / "run.h5")["rig"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"time": 0.0, "voltage": "3.7", "current": 1.0, "step": 1, "cycle": 1},
            "column 'voltage': '3.7' is not a <f8",
        ),
        ({"time": 0.0, "voltage": 3.7, "current": 1.0, "step": 1.5, "cycle": 1}, "column 'step': 1.5 is not a <i4"),
        ({"time": 0.0, "voltage": 3.7, "current": 1.0, "step": 1}, r"missing column\(s\) \['cycle'\]"),
        (
            {"time": 0.0, "voltage": 3.7, "current": 1.0, "step": 1, "cycle": 1, "temp": 3.0},
            r"unknown column\(s\) \['temp'\]",
        ),
        ({"time": [0.0, 1.0], "voltage": [3.7], "current": [1, 1], "step": [1, 1], "cycle": [1, 1]}, "equal length"),
        ({"time": [[0.0]], "voltage": [[3.7]], "current": [[1.0]], "step": [[1]], "cycle": [[1]]}, "1-D"),
        (
            {"time": [0.0], "voltage": [3.7], "current": [1.0], "step": [1.5], "cycle": [1]},
            "float64 values do not fit a <i4",
        ),
    ],
)
def test_wrong_columns_are_refused_and_nothing_is_written(tmp_path, row, message):
    w = new_run(tmp_path)
    with pytest.raises(ColumnError, match=message):
        w.append("cycler", **row)
    assert w.rows("cycler") == 0
    w.append("cycler", time=0.0, voltage=3.7, current=1.0, step=1, cycle=1)
    w.close()
    assert open_run(tmp_path / "run.h5").rows("cycler") == 1


def test_writing_to_a_closed_run(tmp_path):
    w = new_run(tmp_path)
    w.close()
    with pytest.raises(RunClosedError, match="closed"):
        w.append("cycler", time=0.0, voltage=3.7, current=1.0, step=1, cycle=1)
    with pytest.raises(RunClosedError):
        w.event("note", "late")


def test_a_live_writer_blocks_a_second_writer(tmp_path):
    w = new_run(tmp_path)
    assert open_run(tmp_path / "run.h5").status == "running"
    with pytest.raises(WriterAliveError, match="another process is writing"):
        RunWriter.resume(tmp_path / "run.h5")
    w.close()


HOLD_WRITER = """
import sys
from cellrig.storage import Column, RunWriter
w = RunWriter.create(sys.argv[1], {"daq": {"v": Column("V")}})
w.append("daq", time=0.0, v=1.0)
w.flush()
print("writing", flush=True)
sys.stdin.read()  # until the test closes stdin
w.close()
"""


def test_a_deleted_writer_note_does_not_let_a_second_writer_in(tmp_path):
    """The lock is on the run file itself: deleting the ``.writer`` note beside it changes nothing."""
    path = tmp_path / "run.h5"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "writing\n"
        note = tmp_path / "run.h5.writer"
        assert f"pid {child.pid}" in note.read_text()
        with pytest.raises(WriterAliveError, match=f"pid {child.pid}"):
            RunWriter.resume(path)
        note.unlink()
        assert writer_alive(path) and open_run(path).status == "running"
        with pytest.raises(WriterAliveError, match="another process is writing"):
            RunWriter.resume(path)
        with pytest.raises(RunExistsError):
            RunWriter.create(path, {"daq": {"v": Column("V")}})
        with h5py.File(path, "r", swmr=True) as f:  # a reader with HDF5's own file locking still reads it
            assert f["streams/daq/v"].shape == (1,)
    finally:
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    assert not writer_alive(path) and open_run(path).status == "finished"
    RunWriter.resume(path).close()  # the writer is gone: the run may be continued


def test_resume_after_a_clean_close_continues_the_same_file(tmp_path):
    with new_run(tmp_path) as w:
        w.append(
            "cycler",
            time=np.arange(3.0),
            voltage=np.full(3, 3.7),
            current=np.ones(3),
            step=np.ones(3, "i4"),
            cycle=np.ones(3, "i4"),
        )
    w = RunWriter.resume(tmp_path / "run.h5")
    assert open_run(tmp_path / "run.h5").status == "running"
    assert w.last_cycle == 1 and w.last_time() == 2.0
    w.append("cycler", time=3.0, voltage=3.6, current=-1.0, step=3, cycle=2)
    w.close()
    run = open_run(tmp_path / "run.h5")
    assert run.rows("cycler") == 4 and run.status == "finished"
    assert run.events["kind"].tolist() == ["end", "resume", "end"]
    assert run.cycle_index["cycle"].tolist() == [1, 2]


def test_flush_interval_publishes_without_explicit_flush(tmp_path):
    """The background flusher publishes buffered rows: a reader sees them while the writer idles."""
    w = new_run(tmp_path, flush_interval=0.05)
    w.append("cycler", time=0.0, voltage=3.7, current=1.0, step=1, cycle=1)
    path = tmp_path / "run.h5"
    deadline = time.monotonic() + 5.0  # polls a condition; 100 flush intervals of slack
    while open_run(path).rows("cycler") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_run(path).rows("cycler") == 1
    w.close()


def test_closing_never_waits_on_a_flusher_that_wants_the_writer(tmp_path):
    """The flusher takes the writer's mutex to flush; closing (or adding an event to an ended run) joins it only
    after letting go of that mutex, else a flush due at that moment deadlocks both."""

    def write_close_annotate(path) -> None:
        with RunWriter.create(path, {"cycler": CYCLER}, flush_interval=0.0005, fsync=False) as w:
            w.append("cycler", time=0.0, voltage=3.7, current=1.0, step=1, cycle=1)
        RunWriter.annotate(path, "note", "after the end")

    for i in range(20):
        path = tmp_path / f"run{i}.h5"
        closer = threading.Thread(target=write_close_annotate, args=(path,), daemon=True)
        closer.start()
        closer.join(60.0)  # a deadlock guard only: a healthy close takes milliseconds
        assert not closer.is_alive(), f"closing run {i} deadlocked"
        assert open_run(path).events["kind"].iloc[-1] == "note" and open_run(path).status == "finished"


FULL_DISK_WRITER = """
import resource, sys, numpy as np
from cellrig.storage import Column, RunWriteError, RunWriter
w = RunWriter.create(sys.argv[1], {"daq": {"v": Column("V")}}, flush_interval=0.05)
w.append("daq", time=np.arange(1000.0), v=np.arange(1000.0))
w.flush()
print("flushed", w.rows("daq"), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (w.path.stat().st_size + 100_000, resource.RLIM_INFINITY))
t = 1000.0
try:
    while True:  # the file cannot grow past the limit: a full disk, as the writing process meets it
        w.append("daq", time=np.arange(t, t + 10_000), v=np.arange(t, t + 10_000))
        t += 10_000
except RunWriteError as err:
    print("append:", err, flush=True)
for attempt in (lambda: w.event("safe_state", "after the error"), lambda: w.close("failed", "disk full")):
    try:
        attempt()
    except RunWriteError as err:
        print("then:", err, flush=True)
print("closed", w.closed, flush=True)
"""


def test_a_full_disk_cuts_the_file_off_cleanly_keeping_what_was_flushed(tmp_path):
    """The writing process meets a file that cannot grow: it says so, closes, frees the lock, never crashes."""
    path = tmp_path / "run.h5"
    child = subprocess.run([sys.executable, "-c", FULL_DISK_WRITER, str(path)], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr  # HDF5 left half-flushed would crash the process at exit
    lines = child.stdout.splitlines()
    assert lines[0] == "flushed 1000"
    assert lines[1].startswith("append:") and "writing failed (File too large, errno 27)" in lines[1]
    assert lines[2:] == [lines[1].replace("append:", "then:")] * 2 + ["closed True"]
    assert "Traceback" not in child.stderr and not writer_alive(path)
    run = open_run(path)
    v = run.stream("daq")["v"].to_numpy()
    assert run.status == "interrupted" and len(v) >= 1000 and np.array_equal(v, np.arange(len(v)))
    w = RunWriter.resume(path)  # with space again, the run goes on in the same file
    w.close("failed", "disk full")
    assert open_run(path).status == "failed"
