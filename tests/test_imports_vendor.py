"""Neware ``.nda``/``.ndax``, BioLogic ``.mpr`` and Arbin Excel imports, on files written here in those formats.

No real file of these formats can be had in this workplace (none ships with NewareNDA or galvani),
so each test writes one: the byte layouts are the ones NewareNDA and galvani decode (their source
documents them), the Excel layout is Arbin's ``Channel_*`` sheet export.  The files are then read
back through the real libraries, so the tests cover the decoding as well as the normalisation.
Every source states its per-cycle capacities (counters, or a statistics sheet); the import must
reproduce them to 0.1 %.
"""

import datetime as dt
import itertools
import struct
import warnings
import zipfile
from pathlib import Path

import NewareNDA
import numpy as np
import openpyxl
import pandas as pd
import pytest
from galvani.BioLogic import MPR_MAGIC, MPRfile, VMPdata_dtype_from_colIDs

from cellrig.analysis import cycle_summary
from cellrig.storage import open_run
from cellrig.storage.imports import SourceFileError, detect, import_file, neware
from cellrig.storage.imports import _common as common

START = dt.datetime(2025, 3, 14, 10, 0, 0)
DT = 10.0  # s between records
CHARGE_A, DISCHARGE_A = 1.0, 0.8


# -- one cycling profile, written in each vendor's format ------------------------------------------------


def profile(cycles: int = 3) -> pd.DataFrame:
    """A first rest logged from t = 0, then per cycle CC charge, rest, CC discharge, rest.

    Each record after the first closes an interval of at most DT seconds.

    Columns: test and step time (s), protocol step, step as run, cycle (from 1), state, current
    (A, signed), voltage, the step's and the cycle's charge and discharge counters (Ah) and the
    interval's charge (Ah, signed).
    """
    rows, t, run = [], 0.0, 0
    for cycle in range(1, cycles + 1):
        charge_s = 1800.0 - 90.0 * (cycle - 1)  # fading: each cycle holds a little less
        discharge_s = CHARGE_A * charge_s * 0.985 / DISCHARGE_A
        cyc_q = {"C": 0.0, "D": 0.0}
        steps = [
            (2, "C", CHARGE_A, charge_s),
            (3, "R", 0.0, 305.0),
            (4, "D", -DISCHARGE_A, discharge_s),
            (5, "R", 0.0, 300),
        ]
        if cycle == 1:
            steps.insert(0, (1, "R", 0.0, 60.0))
        for index, state, amps, duration in steps:
            run += 1
            clock = np.unique(np.r_[0.0 if run == 1 else DT, np.arange(2 * DT, duration, DT), duration])
            step_q = 0.0
            for k, c in enumerate(clock):
                dq = amps * (c - (clock[k - 1] if k else 0.0)) / 3600.0
                step_q += abs(dq)
                if state in "CD":
                    cyc_q[state] += abs(dq)
                soc = (cyc_q["C"] - cyc_q["D"]) / 0.5
                rows.append(
                    {
                        "time": t + c,
                        "step_time": c,
                        "step": index,
                        "run": run,
                        "cycle": cycle,
                        "state": state,
                        "current": amps,
                        "voltage": 3.3 + 0.4 * soc + 0.05 * amps,
                        "step_charge": step_q if state == "C" else 0.0,
                        "step_discharge": step_q if state == "D" else 0.0,
                        "cycle_charge": cyc_q["C"],
                        "cycle_discharge": cyc_q["D"],
                        "dq": dq,
                        "temperature": 25.0 + 0.1 * cycle,
                    }
                )
            t += duration
    return pd.DataFrame(rows)


def stated(df: pd.DataFrame) -> np.ndarray:
    """Per-cycle charge and discharge capacity (Ah) as the profile's cycle counters state them."""
    return df.groupby("cycle")[["cycle_charge", "cycle_discharge"]].max().to_numpy()


NEWARE_STATUS = {"C": 1, "D": 2, "R": 4}  # CC_Chg, CC_DChg, Rest
NEWARE_RANGE = 10  # NewareNDA's multiplier 1e-3: current in µA, capacity in mA·ms … in the file's integers


def _neware_fields(row) -> tuple[bytes, bytes, bytes]:
    """Step clock (ms), voltage (0.1 mV), current and the step's counters (in the range's units), date and time."""
    readings = struct.pack("<Qii", round(row.step_time * 1000), round(row.voltage * 1e4), round(row.current * 1e6))
    counters = struct.pack("<qqqq", round(row.step_charge * 3.6e9), round(row.step_discharge * 3.6e9), 0, 0)
    t = START + dt.timedelta(seconds=int(row.time))
    return readings, counters, struct.pack("<HBBBBB", t.year, t.month, t.day, t.hour, t.minute, t.second)


def write_nda(path: Path, df: pd.DataFrame) -> Path:
    """A version-29 ``.nda``: header, then 86-byte data records (0x55) and auxiliary temperature records (0x65)."""
    header = bytearray(2560)
    header[:6] = b"NEWARE"
    header[14] = 29
    header[152:156] = struct.pack("<I", 1500)  # active mass, µg
    header[200:250] = b"BTSServer(7.6.0.R3)".ljust(50, b"\x00")
    header[300:350] = b"BTSClient(7.6.0.R3)".ljust(50, b"\x00")
    header[2317:2417] = b"cellrig test cell".ljust(100, b"\x00")
    data, aux = [], []
    for i, row in enumerate(df.itertuples(index=False), start=1):
        rec = bytearray(86)
        rec[0:2] = b"\x55\x00"
        rec[2:13] = struct.pack("<IIHB", i, row.cycle - 1, row.step, NEWARE_STATUS[row.state])
        rec[14:30], rec[38:70], rec[70:77] = _neware_fields(row)
        rec[78:82] = struct.pack("<i", NEWARE_RANGE)
        data.append(bytes(rec))
        a = bytearray(86)
        a[0] = 0x65
        a[1:6] = struct.pack("<BI", 1, i)
        a[34:36] = struct.pack("<h", round(row.temperature * 10))
        aux.append(bytes(a))
    # NewareNDA takes the data to start where a data record follows the first one: two data records lead
    body = [data[0], data[1], aux[0], aux[1]] + [r for pair in zip(data[2:], aux[2:], strict=True) for r in pair]
    path.write_bytes(bytes(header) + b"".join(body))
    return path


def write_ndax(path: Path, df: pd.DataFrame, *, server: str = "8.0.0.484") -> Path:
    """An ``.ndax`` zip: ``VersionInfo.xml`` and a ``data.ndc`` of ndc version 2 (94-byte records from byte 517)."""
    ndc = bytearray(517)
    ndc[0], ndc[2] = 1, 2  # filetype 1 (data), ndc version 2
    for i, row in enumerate(df.itertuples(index=False), start=1):
        rec = bytearray(94)
        rec[0:8] = b"\x55\x00\x07\x00\x01\x00\x00\x00"  # the same 8 bytes open every record
        rec[8:18] = struct.pack("<IIBB", i, row.cycle - 1, row.step, NEWARE_STATUS[row.state])
        rec[23:39], rec[43:75], rec[75:82] = _neware_fields(row)
        rec[82:86] = struct.pack("<i", NEWARE_RANGE)
        ndc += rec
    version = (
        '<?xml version="1.0" encoding="gb2312"?><root><config>'
        f'<ZwjVersion SvrVer="{server}" CurrClientVer="8.0.0.484" ZwjVersion="1" MainXwjVer="2"/>'
        "</config></root>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("VersionInfo.xml", version.encode("gb2312"))
        zf.writestr("data.ndc", bytes(ndc))
    return path


def _module(short: bytes, long: bytes, version: int, date: bytes, data: bytes, *, new_header: bool) -> bytes:
    """A VMP module: ``MODULE`` then the header of EC-Lab < 11.50 (v1) or ≥ 11.50 (v2), then the data."""
    if new_header:
        hdr = struct.pack("<10s25sIIII8s", short, long, 0xFFFFFFFF, len(data), version, 11, date)
    else:
        hdr = struct.pack("<10s25sII8s", short, long, len(data), version, date)
    return b"MODULE" + hdr + data


MPR_OLD = (1, 2, 3, 21, 31, 65, 4, 5, 6, 7, 8, 13, 24, 39, 498, 499)  # GCPL-like: flags, dq, cycle number
MPR_NEW = (1, 2, 3, 21, 31, 65, 4, 6, 27, 76, 13, 131, 468, 462, 498, 499)  # <I>, Q-Qo, Ns, half cycle, T


def write_mpr(path: Path, df: pd.DataFrame, columns: tuple[int, ...], *, new: bool) -> Path:
    """An EC-Lab ``.mpr``: settings, data (module version 3 with new headers, else 2) and LOG modules."""
    dtype, _ = VMPdata_dtype_from_colIDs(np.array(columns))
    rec = np.zeros(len(df), dtype=dtype)
    new_step = np.r_[False, df["run"].to_numpy()[1:] != df["run"].to_numpy()[:-1]]
    rec["flags"] = 1 | (df["current"].to_numpy() > 0) * 0x04 | new_step * 0x20
    qqo = np.cumsum(df["dq"].to_numpy()) * 1000.0
    values = {
        "time/s": df["time"],
        "control/V/mA": df["current"] * 1000.0,
        "Ewe/V": df["voltage"],
        "Ewe-Ece/V": df["voltage"],
        "dq/mA.h": df["dq"] * 1000.0,
        "I/mA": df["current"] * 1000.0,
        "<I>/mA": df["current"] * 1000.0,
        "(Q-Qo)/mA.h": qqo,
        "cycle number": df["cycle"] - 1,
        "I Range": np.full(len(df), 41),
        "Q charge/mA.h": df["cycle_charge"] * 1000.0,
        "Q discharge/mA.h": df["cycle_discharge"] * 1000.0,
        "Ns": df["run"] - 1,
        "half cycle": 2 * (df["cycle"] - 1) + (df["state"] == "D").cumsum().where(df["state"] != "C", 0).clip(0, 1),
        "Temperature/°C": df["temperature"],
    }
    for name in dtype.names:
        if name != "flags":
            rec[name] = np.asarray(values[name])
    ids = np.array(columns, "<u2").tobytes()
    version = 3 if new else 2
    head = struct.pack("<IB", len(df), len(columns)) + ids
    data = head.ljust(405, b"\x00") + (b"\x01" if new else b"") + rec.tobytes()
    date = START.strftime("%m/%d/%y").encode()
    ole = (START - dt.datetime(1899, 12, 30)).total_seconds() / 86400.0
    log = bytearray(600)
    log[465:473] = struct.pack("<d", ole)
    body = MPR_MAGIC + b"".join(
        [
            _module(b"VMP Set   ", b"VMP settings", 0, date, b"\x00" * 64, new_header=new),
            _module(b"VMP data  ", b"VMP data", version, date, data, new_header=new),
            _module(b"VMP LOG   ", b"VMP LOG", 0, date, bytes(log), new_header=new),
        ]
    )
    path.write_bytes(body)
    return path


ARBIN_COLUMNS = [
    "Data_Point",
    "Test_Time(s)",
    "Date_Time",
    "Step_Time(s)",
    "Step_Index",
    "Cycle_Index",
    "Current(A)",
    "Voltage(V)",
    "Charge_Capacity(Ah)",
    "Discharge_Capacity(Ah)",
    "Charge_Energy(Wh)",
    "Discharge_Energy(Wh)",
]


def write_arbin_xlsx(path: Path, df: pd.DataFrame, *, parts: int = 1, milli: bool = False) -> Path:
    """An Arbin MITS Pro Excel export: Global_Info, Channel_1-008 (split over ``parts`` sheets), Statistics."""
    wb = openpyxl.Workbook()
    info = wb.active
    info.title = "Global_Info"
    info.append(["TEST REPORT"])
    info.append([])
    info.append(["Channel", "Start DateTime", "Schedule File Name", "Software Version", "Schedule Version"])
    info.append([8, START, "cycling.sdu", "MITS Pro 8.00.14", "Schedule Version 8.00.14"])
    scale = 1000.0 if milli else 1.0
    columns = [c.replace("(A)", "(mA)").replace("(Ah)", "(mAh)") if milli else c for c in ARBIN_COLUMNS]
    bounds = np.linspace(0, len(df), parts + 1).astype(int)
    for k, (first, end) in enumerate(itertools.pairwise(bounds), start=1):
        chunk = df.iloc[first:end]
        sheet = wb.create_sheet("Channel_1-008" if k == 1 else f"Channel_1-008_{k}")
        sheet.append(columns)
        for row in chunk.itertuples():
            sheet.append(
                [
                    row.Index + 1,
                    row.time,
                    START + dt.timedelta(seconds=row.time),
                    row.step_time,
                    row.step,
                    row.cycle,
                    row.current * scale,
                    row.voltage,
                    row.cycle_charge * scale,
                    row.cycle_discharge * scale,
                    0.0,
                    0.0,
                ]
            )
    stats = wb.create_sheet("Statistics_1-008")
    stats.append(["Cycle_Index", "Charge_Capacity(Ah)", "Discharge_Capacity(Ah)"])
    for cycle, (qc, qd) in enumerate(stated(df), start=1):
        stats.append([cycle, qc, qd])
    wb.save(path)
    return path


# -- the imports -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    return profile()


def _summary(run_path: Path) -> np.ndarray:
    return cycle_summary(run_path)[["charge_capacity", "discharge_capacity"]].to_numpy()


def _neware_counters(path: Path) -> np.ndarray:
    """What the Neware file states, read by NewareNDA: each step's last counter value, summed per cycle."""
    with warnings.catch_warnings():  # NewareNDA's deprecated pandas calls
        warnings.simplefilter("ignore", DeprecationWarning)
        df = NewareNDA.read(str(path), software_cycle_number=False, log_level="WARNING")
    last = df.groupby("Step")[["Cycle", "Charge_Capacity(mAh)", "Discharge_Capacity(mAh)"]].last()
    return last.groupby("Cycle")[["Charge_Capacity(mAh)", "Discharge_Capacity(mAh)"]].sum().to_numpy() / 1000.0


def _mpr_counters(path: Path) -> np.ndarray:
    """What the .mpr states, read by galvani: EC-Lab's per-cycle Q charge and Q discharge counters."""
    mpr = MPRfile(str(path))
    frame = pd.DataFrame({k: mpr.data[k] for k in ("Q charge/mA.h", "Q discharge/mA.h")})
    key = mpr.data["cycle number"] if "cycle number" in mpr.data.dtype.names else mpr.data["half cycle"] // 2
    return frame.groupby(key).max().to_numpy() / 1000.0


def _xlsx_statistics(path: Path) -> np.ndarray:
    stats = pd.read_excel(path, sheet_name="Statistics_1-008")
    return stats[["Charge_Capacity(Ah)", "Discharge_Capacity(Ah)"]].to_numpy()


def _write(kind: str, tmp_path: Path, df: pd.DataFrame) -> tuple[Path, np.ndarray]:
    """Write ``kind`` and return it with the per-cycle capacities it states, read back independently."""
    if kind == "nda":
        path = write_nda(tmp_path / "cell.nda", df)
        return path, _neware_counters(path)
    if kind == "ndax":
        path = write_ndax(tmp_path / "cell.ndax", df)
        return path, _neware_counters(path)
    if kind in ("mpr-old", "mpr-new"):
        new = kind == "mpr-new"
        path = write_mpr(tmp_path / "cell.mpr", df, MPR_NEW if new else MPR_OLD, new=new)
        return path, _mpr_counters(path)
    parts = 2 if kind == "xlsx-2-sheets" else 1
    path = write_arbin_xlsx(tmp_path / "cell.xlsx", df, parts=parts, milli=kind == "xlsx-milli")
    return path, _xlsx_statistics(path)


KINDS = {
    "nda": "neware",
    "ndax": "neware",
    "mpr-old": "biologic-mpr",
    "mpr-new": "biologic-mpr",
    "xlsx": "arbin-xlsx",
    "xlsx-2-sheets": "arbin-xlsx",
    "xlsx-milli": "arbin-xlsx",
}


@pytest.mark.parametrize("kind", KINDS)
def test_per_cycle_capacities_match_what_the_source_states(tmp_path, source, kind):
    path, states = _write(kind, tmp_path, source)
    np.testing.assert_allclose(states, stated(source), rtol=1e-6)  # the file holds what was meant
    assert detect(path) == KINDS[kind]
    run = import_file(path, tmp_path / "out", chemistry="LFP")
    summary = cycle_summary(run)
    assert summary["cycle"].tolist() == [1, 2, 3]  # counted from 1
    np.testing.assert_allclose(summary[["charge_capacity", "discharge_capacity"]].to_numpy(), states, rtol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_layout_units_signs_and_source_metadata(tmp_path, source, kind):
    path, _ = _write(kind, tmp_path, source)
    run = open_run(import_file(path, tmp_path / "out"))
    assert run.path.name == "cell.h5"
    assert run.status == "finished"
    ds = run["cycler"]
    np.testing.assert_allclose(ds["time"].values, source["time"], atol=1e-3)
    assert ds["current"].values.min() == pytest.approx(-DISCHARGE_A, rel=1e-3)  # A, discharge negative
    assert ds["current"].values.max() == pytest.approx(CHARGE_A, rel=1e-3)
    assert ds["cycle"].values.min() == 1
    meta = run.meta["source"]
    assert meta["file"] == path.name
    assert meta["sha256"] == common.sha256(path)
    assert meta["format"] == KINDS[kind]
    assert meta["version"]
    assert meta["started"].startswith("2025-03-14T10:00:00")


def test_versions_temperatures_and_start_are_recorded(tmp_path, source):
    nda = open_run(import_file(write_nda(tmp_path / "a.nda", source), tmp_path / "out"))
    assert nda.meta["source"]["version"] == "nda version 29, BTSServer(7.6.0.R3), BTSClient(7.6.0.R3)"
    assert nda.meta["source"]["remarks"] == "cellrig test cell"
    assert nda.meta["source"]["cycle_counter"] == "the tester's"
    np.testing.assert_allclose(nda["cycler"]["temperature"].values, source["temperature"], atol=0.05)
    ndax = open_run(import_file(write_ndax(tmp_path / "b.ndax", source), tmp_path / "out"))
    assert ndax.meta["source"]["version"] == "ndax, data.ndc version 2, BTS server 8.0.0.484"
    assert ndax.meta["source"]["started"] == "2025-03-14T10:00:00 (tester's local time)"
    new = open_run(import_file(write_mpr(tmp_path / "c.mpr", source, MPR_NEW, new=True), tmp_path / "out"))
    assert new.meta["source"]["version"] == "EC-Lab .mpr, data module version 3, module headers of EC-Lab ≥ 11.50"
    np.testing.assert_allclose(new["cycler"]["temperature"].values, source["temperature"], rtol=1e-6)
    np.testing.assert_array_equal(new["cycler"]["step"].values, source["run"] - 1)  # Ns
    old = open_run(import_file(write_mpr(tmp_path / "d.mpr", source, MPR_OLD, new=False), tmp_path / "out"))
    assert old.meta["source"]["version"] == "EC-Lab .mpr, data module version 2, module headers of EC-Lab < 11.50"
    np.testing.assert_array_equal(old["cycler"]["step"].values, source["run"] - 1)  # counted from Ns changes
    xlsx = open_run(import_file(write_arbin_xlsx(tmp_path / "e.xlsx", source, parts=2), tmp_path / "out"))
    assert xlsx.meta["source"]["version"] == "MITS Pro Excel export (software MITS Pro 8.00.14)"
    assert xlsx.meta["source"]["sheets"] == "Channel_1-008, Channel_1-008_2"
    assert xlsx.meta["source"]["Schedule File Name"] == "cycling.sdu"


def test_neware_step_clock_becomes_test_time():
    clock = np.array([10.0, 20.0, 25.0, 10.0, 20.0, 5.0])
    runs = np.array([1, 1, 1, 2, 2, 3])
    np.testing.assert_allclose(neware.clock_to_test_time(clock, runs), [10, 20, 25, 35, 45, 50])
    total = np.array([10.0, 20.0, 30.0, 40.0])  # a clock that runs on across steps is test time already
    np.testing.assert_allclose(neware.clock_to_test_time(total, np.array([1, 1, 2, 2])), total)


def test_neware_current_sign_follows_the_status():
    status = np.array(["CC_Chg", "CC_DChg", "Rest", "CCCV_DChg", "CV_Chg"])
    current = np.array([1.0, 0.8, 0.0, -0.5, -0.2])  # unsigned, or signed the wrong way
    np.testing.assert_allclose(neware.signed_current(current, status), [1.0, -0.8, 0.0, -0.5, 0.2])


# -- bad files -------------------------------------------------------------------------------------------


def _fails(path: Path, out: Path, match: str) -> SourceFileError:
    with pytest.raises(SourceFileError, match=match) as info:
        import_file(path, out)
    assert str(path) in str(info.value)
    assert not out.exists() or not any(out.iterdir())  # nothing that looks like a run is left
    return info.value


def test_truncated_nda_names_the_cut_record(tmp_path, source):
    path = write_nda(tmp_path / "cell.nda", source)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 86 * 10 - 40])  # cut inside the 11th record from the end
    records = (len(data) - 2560) // 86
    error = _fails(path, tmp_path / "out", "truncated: the last record has 46 of its 86 bytes")
    assert error.line == records - 10
    assert f"counted) {records - 10}:" in str(error)


@pytest.mark.parametrize("suffix", [".ndax", ".xlsx"])
def test_truncated_zip_formats_are_refused(tmp_path, source, suffix):
    write = write_ndax if suffix == ".ndax" else write_arbin_xlsx
    path = write(tmp_path / f"cell{suffix}", source.iloc[:300])
    path.write_bytes(path.read_bytes()[:-200])
    _fails(path, tmp_path / "out", "truncated or damaged")


def test_truncated_mpr_is_refused(tmp_path, source):
    path = write_mpr(tmp_path / "cell.mpr", source, MPR_OLD, new=False)
    path.write_bytes(path.read_bytes()[:-700])  # into the data module
    _fails(path, tmp_path / "out", "not a readable EC-Lab .mpr file .*Unexpected end of file")


def test_bad_value_in_a_binary_file_names_its_record(tmp_path, source):
    df = source.copy()
    df.loc[150, "step_time"] = 1.0  # the step clock jumps back inside a step
    error = _fails(write_nda(tmp_path / "cell.nda", df), tmp_path / "out", "time runs backwards")
    assert error.line == 151
    assert "record 151" in str(error)
    mpr = source.copy()
    mpr.loc[40, "voltage"] = np.nan
    error = _fails(write_mpr(tmp_path / "cell.mpr", mpr, MPR_OLD, new=False), tmp_path / "out2", "'Ewe/V': empty")
    assert "data point 41" in str(error)


def test_bad_cell_in_an_arbin_sheet_names_sheet_and_row(tmp_path, source):
    path = write_arbin_xlsx(tmp_path / "cell.xlsx", source.iloc[:400], parts=2)
    wb = openpyxl.load_workbook(path)
    wb["Channel_1-008_2"]["H12"] = "x3.7"  # Voltage(V)
    wb.save(path)
    error = _fails(path, tmp_path / "out", "column 'Voltage\\(V\\)': 'x3.7' is not a number")
    assert "sheet 'Channel_1-008_2' row 12" in str(error)
    assert error.line == 12


def test_arbin_workbook_without_a_channel_or_with_two_is_refused(tmp_path, source):
    path = write_arbin_xlsx(tmp_path / "two.xlsx", source.iloc[:50])
    wb = openpyxl.load_workbook(path)
    wb.copy_worksheet(wb["Channel_1-008"]).title = "Channel_1-009"
    wb.save(path)
    _fails(path, tmp_path / "out", "holds channels Channel_1-008, Channel_1-009: export one channel per file")
    wb = openpyxl.Workbook()
    wb.active.append(["Data_Point", "Voltage(V)"])
    wb.save(tmp_path / "other.xlsx")
    _fails(tmp_path / "other.xlsx", tmp_path / "out", "no Channel_\\* sheet")


def test_arbin_unknown_unit_is_refused(tmp_path, source):
    path = write_arbin_xlsx(tmp_path / "cell.xlsx", source.iloc[:50])
    wb = openpyxl.load_workbook(path)
    wb["Channel_1-008"]["G1"] = "Current(kA)"
    wb.save(path)
    _fails(path, tmp_path / "out", "unit 'kA' is not one of")


def test_a_neware_file_must_carry_its_suffix(tmp_path, source):
    path = write_nda(tmp_path / "cell.dat", source.iloc[:20])
    assert detect(path) == "neware"  # recognised by its magic number
    _fails(path, tmp_path / "out", r"must be named \*\.nda")
