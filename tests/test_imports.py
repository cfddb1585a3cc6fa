"""Importing other cyclers' exports into run files, and the Battery Data Format round trip.

The real export files live outside the repository (../shared/data/cycler-exports, from
TRI-AMDD/beep's test data); malformed and truncated variants are made from them in tmp_path.
"""

import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrig.analysis import StepDetection, cycle_summary
from cellrig.storage import Column, RunExistsError, RunWriter, open_run
from cellrig.storage.imports import SourceFileError, detect, export_bdf, import_file, import_files
from cellrig.storage.imports import _common as common
from cellrig.storage.imports.bdf import LABELS

EXPORTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler-exports"
pytestmark = pytest.mark.skipif(not EXPORTS.is_dir(), reason=f"real cycler exports not found at {EXPORTS}")

ARBIN = "FastCharge_000025_CH8.csv"
MACCOR = "xTESLADIAG_000038.078"
BIOLOGIC = "test_loopsnewoutput_MB_CE1_short10k.csv"
NOVONIX = "test_Nova_Form-CH01-01_short.csv"
FORMATS = {ARBIN: "arbin-csv", MACCOR: "maccor-text", BIOLOGIC: "biologic-text", NOVONIX: "novonix-hpc"}
# The Novonix formation file holds a CV to tiny currents: rows below 10⁻³ × the largest current are
# not rest there, so the summary uses a finer rest threshold (the same for every file).
DETECTION = StepDetection(rest_current=1e-5)
NEEDS_PYARROW = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="BDF Parquet needs pyarrow")


# -- what each source file says its per-cycle capacities are (parsed here independently) -------------


def _arbin_capacities() -> pd.DataFrame:
    df = pd.read_csv(EXPORTS / ARBIN)
    return df.groupby("Cycle_Index")[["Charge_Capacity", "Discharge_Capacity"]].max().to_numpy()


def _maccor_capacities() -> np.ndarray:
    df = pd.read_csv(EXPORTS / MACCOR, sep="\t", skiprows=1)
    per_step = df.groupby(["Cyc#", "Step", "State"])["Amp-hr"].max().unstack("State", fill_value=0.0)
    return per_step.groupby("Cyc#")[["C", "D"]].sum().to_numpy()  # Amp-hr counts each step from zero


def _biologic_capacities() -> np.ndarray:
    df = pd.read_csv(EXPORTS / BIOLOGIC, sep=";")
    return df.groupby("cycle number")[["Q charge/mA.h", "Q discharge/mA.h"]].max().to_numpy() / 1000.0


def _novonix_capacities() -> np.ndarray:
    lines = (EXPORTS / NOVONIX).read_text(encoding="utf-8").splitlines()
    data = "\n".join(line.strip('"') for line in lines[lines.index("[Data]") + 1 :])
    df = pd.read_csv(io.StringIO(data))
    q = df["Capacity (Ah)"].where(df["Current (A)"] != 0)
    charge = q.where(df["Current (A)"] > 0).groupby(df["Cycle Number"]).max()
    discharge = q.where(df["Current (A)"] < 0).groupby(df["Cycle Number"]).max()
    return np.column_stack([charge.fillna(0.0), discharge.fillna(0.0)])


SOURCE_CAPACITIES = {
    ARBIN: _arbin_capacities,
    MACCOR: _maccor_capacities,
    BIOLOGIC: _biologic_capacities,
    NOVONIX: _novonix_capacities,
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    return {name: import_file(EXPORTS / name, out, chemistry="test") for name in FORMATS}


# -- the real files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_format_is_detected_from_the_content(name):
    assert detect(EXPORTS / name) == FORMATS[name]


@pytest.mark.parametrize("name", FORMATS)
def test_per_cycle_capacities_match_the_source_counters(imported, name):
    summary = cycle_summary(imported[name], detection=DETECTION)
    expected = SOURCE_CAPACITIES[name]()
    assert summary["cycle"].tolist() == list(range(1, len(expected) + 1))  # counted from 1
    got = summary[["charge_capacity", "discharge_capacity"]].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("name", FORMATS)
def test_run_layout_units_and_source_metadata(imported, name):
    run = open_run(imported[name])
    assert run.streams == ("cycler",)
    assert run.status == "finished"
    units = run.columns("cycler")
    assert {k: units[k] for k in ("voltage", "current", "step", "cycle")} == {
        "voltage": "V",
        "current": "A",
        "step": "",
        "cycle": "",
    }
    source = run.meta["source"]
    assert source["file"] == name
    assert source["sha256"] == hashlib.sha256((EXPORTS / name).read_bytes()).hexdigest()
    assert source["format"] == FORMATS[name]
    assert source["version"]
    assert (run.meta["cell"]["id"], run.meta["cell"]["chemistry"]) == (imported[name].stem, "test")
    assert run["cycler"]["cycle"].values.min() == 1


def _arbin_from_maccor(path: Path) -> pd.DataFrame:
    """An Arbin CSV export of the Maccor file's cycling (the real Arbin sample only rests)."""
    m = pd.read_csv(EXPORTS / MACCOR, sep="\t", skiprows=1)
    step_key = [m["Cyc#"], m["Step"]]
    increment = m["Amp-hr"].groupby(step_key).diff().fillna(m["Amp-hr"])
    charge, discharge = increment.where(m["State"] == "C", 0.0), increment.where(m["State"] == "D", 0.0)
    df = pd.DataFrame(
        {
            "Data_Point": np.arange(len(m)),
            "Test_Time": m["Test (Sec)"],
            "DateTime": 1.5e9 + m["Test (Sec)"],
            "Step_Time": m["Step (Sec)"],
            "Step_Index": m["Step"],
            "Cycle_Index": m["Cyc#"] + 1,  # Arbin counts from 1
            "Current": m["Amps"],
            "Voltage": m["Volts"],
            "Charge_Capacity": charge.groupby(m["Cyc#"]).cumsum(),
            "Discharge_Capacity": discharge.groupby(m["Cyc#"]).cumsum(),
            "Temperature": 25.0,
        }
    )
    df.to_csv(path, index=False, float_format="%.10g")
    return df


def test_arbin_cycling_capacities_match_its_counters(tmp_path):
    source = _arbin_from_maccor(tmp_path / "cycling.csv")
    run = open_run(import_file(tmp_path / "cycling.csv", tmp_path / "out"))
    assert run.meta["source"]["cycle_offset"] == 0
    assert run.meta["source"]["version"] == "unknown (no _Metadata file)"
    summary = cycle_summary(run, detection=DETECTION)
    expected = source.groupby("Cycle_Index")[["Charge_Capacity", "Discharge_Capacity"]].max()
    assert summary["cycle"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(summary[["charge_capacity", "discharge_capacity"]], expected, rtol=1e-3)
    np.testing.assert_allclose(summary["temperature_mean"], 25.0)


def test_versions_and_companion_files_are_recorded(imported):
    arbin = open_run(imported[ARBIN]).meta["source"]
    assert arbin["version"] == "Schedule Version 7.00.08"
    assert set(arbin["companions"]) == {"FastCharge_000025_CH8_Metadata.csv"}
    novonix = open_run(imported[NOVONIX])
    assert novonix.meta["source"]["version"] == "HPC 2.2.1.6"
    assert novonix.meta["cell"]["nominal_capacity_Ah"] == 0.24  # stated in the file's summary
    assert "temperature" in novonix.columns("cycler")


def test_discharge_is_negative_in_amperes(imported):
    ds = open_run(imported[BIOLOGIC])["cycler"]
    i = ds["current"].values
    assert i.min() == pytest.approx(-0.36, abs=0.01)  # the file's −360 mA discharge, in A
    assert i.max() == pytest.approx(2.5, abs=0.05)
    maccor = open_run(imported[MACCOR])["cycler"]
    assert maccor["current"].values.min() == pytest.approx(-4.7, abs=0.02)


def test_a_run_file_is_never_overwritten(tmp_path):
    first = import_file(EXPORTS / ARBIN, tmp_path)
    before = first.read_bytes()
    with pytest.raises(RunExistsError, match="never overwritten"):
        import_file(EXPORTS / ARBIN, tmp_path)
    assert first.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


def test_import_files_imports_each(tmp_path):
    paths = import_files([EXPORTS / ARBIN, EXPORTS / NOVONIX], tmp_path, nominal_capacity=1.1)
    assert [p.name for p in paths] == ["FastCharge_000025_CH8.h5", "test_Nova_Form-CH01-01_short.h5"]
    assert [open_run(p).meta["cell"]["nominal_capacity_Ah"] for p in paths] == [1.1, 1.1]


def test_ec_lab_mpt_with_header_block_and_time_in_seconds(tmp_path):
    df = pd.read_csv(EXPORTS / BIOLOGIC, sep=";", nrows=2000)
    stamps = pd.to_datetime(df["time/s"], format="%m/%d/%Y %H:%M:%S.%f")
    df["time/s"] = (stamps - stamps.iloc[0]).dt.total_seconds()
    mpt = tmp_path / "cell.mpt"
    with mpt.open("w", encoding="cp1252") as fh:  # as EC-Lab writes it
        fh.write("EC-Lab ASCII FILE\nNb header lines : 5\n\nModulo Bat\n")
        df.to_csv(fh, sep="\t", index=False, float_format="%.17g")
    run = open_run(import_file(mpt, tmp_path / "out"))
    plain = open_run(import_file(EXPORTS / BIOLOGIC, tmp_path / "plain"))["cycler"]
    assert run.meta["source"]["version"] == "EC-Lab ASCII FILE (.mpt) with header block"
    np.testing.assert_array_equal(run["cycler"]["current"].values, plain["current"].values[:2000])


# -- interval mean current ------------------------------------------------------------------------------


def test_interval_current_uses_the_counter_over_long_intervals_only():
    table = common.Table(
        time=np.array([0.0, 0.5, 120.5]),
        voltage=np.full(3, 3.7),
        current=np.array([1.0, 1.0, 0.5]),  # sampled at the row
        step=np.ones(3, "i4"),
        cycle=np.ones(3, "i4"),
        format="x",
        version="x",
        charge=np.array([0.0, 0.5 / 3600, 90.0 / 3600]),  # Ah over each interval: a mean of 0.75 A
    )
    current, how = common.interval_current(table)
    np.testing.assert_allclose(current, [1.0, 1.0, 0.75])
    assert "ΔQ/Δt" in how


def test_counter_increments_restart_on_key_change_and_on_a_drop():
    counter = np.array([0.1, 0.3, 0.05, 0.2, 0.1, 0.4])
    step = np.array([1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(common.segment_increments(counter), [0.1, 0.2, 0.05, 0.15, 0.1, 0.3])
    np.testing.assert_allclose(common.segment_increments(counter + 1.0, step), [1.1, 0.2, 1.05, 0.15, 1.1, 0.3])


# -- Battery Data Format ------------------------------------------------------------------------------


def _write_handmade_run(path: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 500
    columns = {
        "voltage": Column("V"),
        "current": Column("A"),
        "step": Column("", "i4"),
        "cycle": Column("", "i4"),
        "temperature": Column("degC"),
        "power": Column("W"),
    }
    current = np.where(np.arange(n) % 100 < 50, 1.0, -1.0) + rng.normal(0, 1e-3, n)
    voltage = 3.7 + 0.1 * rng.random(n)
    with RunWriter.create(path, {"cycler": columns}, {"cell": {"id": "h"}}, cycle_stream="cycler", fsync=False) as w:
        w.append(
            "cycler",
            time=np.arange(n) * 10.0 + rng.random(n),
            voltage=voltage,
            current=current,
            step=(np.arange(n) % 100 // 50 + 1).astype("i4"),
            cycle=(np.arange(n) // 100 + 1).astype("i4"),
            temperature=25 + rng.random(n),
            power=voltage * current,
        )
    return path


@pytest.mark.parametrize(
    "suffix",
    [
        ".bdf.csv",
        pytest.param(".bdf.parquet", marks=NEEDS_PYARROW),
    ],
)
def test_bdf_round_trip_keeps_every_column(tmp_path, suffix):
    original = open_run(_write_handmade_run(tmp_path / "orig.h5"))
    bdf = export_bdf(original, tmp_path / f"cell{suffix}")
    assert detect(bdf) == "bdf"
    back = open_run(import_file(bdf, tmp_path / "back"))
    a, b = original["cycler"], back["cycler"]
    assert set(b.data_vars) == set(a.data_vars)
    np.testing.assert_array_equal(b["time"].values, a["time"].values)
    for name, var in a.data_vars.items():
        np.testing.assert_array_equal(b[name].values, var.values, err_msg=name)
        assert b[name].attrs["units"] == var.attrs["units"], name
    pd.testing.assert_frame_equal(cycle_summary(back), cycle_summary(original), check_like=True)
    started = pd.Timestamp(original.attrs["started"]).timestamp()
    assert back.meta["source"]["started_unix"] == pytest.approx(started, abs=1e-6)  # from Unix Time / s


def test_bdf_gz_with_text_columns_and_zero_based_cycles(tmp_path):
    frame = pd.DataFrame(
        {
            "Test Time / s": [0.0, 10.0, 20.0, 30.0],
            "Voltage / V": [3.5, 3.6, 3.4, 3.3],
            "Current / A": [1.0, 1.0, -1.0, -1.0],
            "Cycle Count / 1": [0, 0, 1, 1],
            "Step Index / 1": [1, 1, 2, 2],  # batterydf 0.1.0 label
            "Step Type": ["CC_CHG", "CC_CHG", "CC_DCH", "CC_DCH"],
            "Charging Capacity / Ah": [0.0, 1 / 360, 1 / 360, 1 / 360],
        }
    )
    path = tmp_path / "lab__cell__20250101_001.bdf.gz"
    frame.to_csv(path, index=False)
    run = open_run(import_file(path, tmp_path / "out"))
    ds = run["cycler"]
    assert run.path.name == "lab__cell__20250101_001.h5"
    assert ds["cycle"].values.tolist() == [1, 1, 2, 2]
    assert ds["step"].values.tolist() == [1, 1, 2, 2]
    assert ds["charging_capacity"].attrs["units"] == "Ah"
    assert run.meta["source"]["skipped_columns"] == ["step_type"]


def test_bdf_labels_and_no_overwrite(tmp_path, imported):
    path = export_bdf(imported[NOVONIX], tmp_path / "nova.bdf.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[:2] == [LABELS["time"], LABELS["voltage"]]  # no Unix time: the source logs local time only
    assert {LABELS["current"], LABELS["cycle"], LABELS["step"], LABELS["temperature"]} <= set(header)
    with pytest.raises(FileExistsError):
        export_bdf(imported[NOVONIX], path)
    arbin = open_run(import_file(export_bdf(imported[ARBIN], tmp_path / "arbin.bdf.csv"), tmp_path / "back"))
    assert arbin.meta["source"]["started_unix"] == open_run(imported[ARBIN]).meta["source"]["started_unix"]


# -- malformed and truncated files ----------------------------------------------------------------------


def _variant(tmp_path: Path, name: str, edit) -> Path:
    data = (EXPORTS / name).read_bytes()
    path = tmp_path / "src" / name
    path.parent.mkdir()
    path.write_bytes(edit(data))
    return path


def _lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _cut_last_line(data: bytes) -> bytes:
    """The file as a writer killed halfway through its last row leaves it."""
    body = data.rstrip(b"\r\n")
    start = body.rfind(b"\n") + 1
    return body[: start + (len(body) - start) // 2]


def _last_line_number(data: bytes) -> int:
    return len(data.rstrip(b"\r\n").splitlines())


def _assert_fails_and_leaves_nothing(path: Path, out: Path, match: str) -> SourceFileError:
    with pytest.raises(SourceFileError, match=match) as info:
        import_file(path, out)
    assert str(path) in str(info.value)
    assert not out.exists() or not any(out.iterdir())
    return info.value


@pytest.mark.parametrize("name", FORMATS)
def test_truncated_file_names_the_line_and_leaves_nothing(tmp_path, name):
    path = _variant(tmp_path, name, _cut_last_line)
    error = _assert_fails_and_leaves_nothing(path, tmp_path / "out", "fields where the header has")
    assert error.line == _last_line_number(path.read_bytes())


@pytest.mark.parametrize("name", FORMATS)
def test_non_numeric_value_names_its_line(tmp_path, name):
    row = 200  # a data row of every file

    def spoil(data: bytes) -> bytes:
        lines = _lines_of(data)
        sep = {MACCOR: b"\t", BIOLOGIC: b";"}.get(name, b",")
        fields = lines[row - 1].split(sep)
        column = {ARBIN: 7, MACCOR: 8, BIOLOGIC: 5, NOVONIX: 6}[name]  # the voltage
        fields[column] = b"x3.7"
        lines[row - 1] = sep.join(fields)
        return b"".join(lines)

    path = _variant(tmp_path, name, spoil)
    error = _assert_fails_and_leaves_nothing(path, tmp_path / "out", "'x3.7' is not a number")
    assert error.line == row
    assert f"line {row}" in str(error)


def test_time_running_backwards_is_refused(tmp_path):
    def swap(data: bytes) -> bytes:
        lines = _lines_of(data)
        lines[99], lines[100] = lines[100], lines[99]
        return b"".join(lines)

    path = _variant(tmp_path, MACCOR, swap)
    error = _assert_fails_and_leaves_nothing(path, tmp_path / "out", "time runs backwards")
    assert error.line == 101


def test_novonix_cut_before_the_data_and_undecodable_bytes(tmp_path):
    head = _variant(tmp_path, NOVONIX, lambda d: d[: d.index(b"[Data]")])
    _assert_fails_and_leaves_nothing(head, tmp_path / "out", r"no \[Data\] section")
    garbled = tmp_path / "garbled" / NOVONIX
    garbled.parent.mkdir()
    lines = _lines_of((EXPORTS / NOVONIX).read_bytes())
    lines[199] = lines[199].replace(b"AM", b"\xff\xfe")
    garbled.write_bytes(b"".join(lines))
    error = _assert_fails_and_leaves_nothing(garbled, tmp_path / "out", "not UTF-8 text")
    assert error.line == 200


def test_unknown_format_and_missing_column(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    _assert_fails_and_leaves_nothing(other, tmp_path / "out", "unknown format")
    bdf = tmp_path / "x.bdf.csv"
    bdf.write_text("Test Time / s,Voltage / V,Current / A\n0,3.7,1\n1,3.7\n")
    error = _assert_fails_and_leaves_nothing(bdf, tmp_path / "out", "2 fields where the header has 3")
    assert error.line == 3


@NEEDS_PYARROW
def test_damaged_parquet_is_refused(tmp_path):
    path = tmp_path / "cell.bdf.parquet"
    path.write_bytes(b"PAR1" + bytes(64))
    _assert_fails_and_leaves_nothing(path, tmp_path / "out", "not a readable Parquet file")


def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, stream, /, **values):
        raise OSError("disk full")

    monkeypatch.setattr(common.RunWriter, "append", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        import_file(EXPORTS / MACCOR, out)
    assert list(out.iterdir()) == []
