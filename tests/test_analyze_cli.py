"""``cellrig analyze`` and ``cellrig report`` as a user types them (the installed console script, in a subprocess)."""

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster
from test_report import CELLS, write_cells

from cellrig.analysis.cycles import BDF_NAMES
from cellrig.analysis.synthetic import COLUMNS, write_run
from cellrig.storage import RunWriter

CELLRIG = Path(sys.executable).with_name("cellrig")  # the script pip installed beside this Python


def cellrig(*args: str) -> subprocess.CompletedProcess:
    assert CELLRIG.exists(), f"{CELLRIG} missing: install the package (pip install -e .) first"
    return subprocess.run([str(CELLRIG), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaign")
    return folder, write_cells(folder)


@pytest.fixture(scope="module")
def analyzed(campaign):
    folder, _ = campaign
    out = cellrig("analyze", str(folder), "--out", str(folder / "tables"))
    assert out.returncode == 0, out.stderr
    return out, folder / "tables"


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_analyze_writes_bdf_cycles_that_match_the_truth(campaign, analyzed, kind):
    _, truth = campaign
    _, tables = analyzed
    cycles = pd.read_parquet(tables / "cycles.parquet") if kind == "parquet" else pd.read_csv(tables / "cycles.csv")
    assert list(cycles.columns[:2]) == ["run_id", "cell_id"]
    assert set(cycles.columns[2:]) <= set(BDF_NAMES.values())
    assert {"Cycle Count / 1", "Cycle Discharging Capacity / Ah", "Cycle Charging Capacity / Ah"} <= set(cycles.columns)
    assert cycles.groupby("cell_id").size().to_dict() == {c.cell_id: c.cycles for c in CELLS}
    for cell_id, expected in truth.items():
        mine = cycles[cycles["cell_id"] == cell_id]
        np.testing.assert_array_equal(mine["Cycle Count / 1"], expected["cycle"])
        np.testing.assert_allclose(mine["Cycle Discharging Capacity / Ah"], expected["discharge_capacity"], rtol=1e-9)
        np.testing.assert_allclose(mine["Cycle Charging Capacity / Ah"], expected["charge_capacity"], rtol=1e-9)


def test_analyze_writes_life_and_catalog_and_prints_a_row_per_cell(analyzed):
    out, tables = analyzed
    life = pd.read_parquet(tables / "life.parquet")
    assert sorted(life["cell_id"]) == [c.cell_id for c in CELLS]
    assert life.set_index("cell_id")["censored"].to_dict() == {f"C{i}": i >= 2 for i in range(6)}
    assert pd.read_csv(tables / "catalog.csv")["cell_id"].tolist() == [c.cell_id for c in CELLS]
    assert pd.read_parquet(tables / "cycles.parquet").attrs["bdf_ontology"] == "1.3.0"
    for cell in CELLS:
        assert re.search(rf"│ {cell.cell_id} +│ {re.escape(cell.chemistry)} +│ +120 │", out.stdout), cell.cell_id
    assert str(tables / "cycles.parquet") in out.stdout and "analysing runs" in out.stderr
    assert "censored" in out.stdout


def test_a_distributed_cluster_gives_the_same_tables(campaign, analyzed):
    folder, _ = campaign
    _, local = analyzed
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        out = cellrig("analyze", str(folder), "--out", str(folder / "dist"), "--scheduler", cluster.scheduler_address)
    assert out.returncode == 0, out.stderr
    for name in ("cycles", "life"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(folder / "dist" / f"{name}.parquet"), pd.read_parquet(local / f"{name}.parquet")
        )


def test_report_is_one_self_contained_html_file(campaign, tmp_path):
    folder, _ = campaign
    out = cellrig("report", str(folder), "-o", str(tmp_path / "r" / "report.html"))
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "r").iterdir()) == [tmp_path / "r" / "report.html"]
    page = (tmp_path / "r" / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == page.count("<img") == 6  # fade, voltage, dQ/dV, DCIR, temperature, consistency
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in "".join(sources) and "<link" not in page and "<script" not in page
    table = page[page.index("<h2>Life metrics") :]
    for cell in CELLS:
        assert f"<tr><td>{cell.cell_id}</td><td>{cell.chemistry}</td>" in table
    assert "writing report" in out.stderr


@pytest.mark.parametrize(
    ("command", "folder", "words"),
    [(("analyze",), "nope", "not a folder of run files"), (("report", "-o", "r.html"), "empty", "no run files")],
)
def test_missing_or_empty_folders_are_one_line_errors(tmp_path, command, folder, words):
    (tmp_path / "empty").mkdir()
    out = cellrig(command[0], str(tmp_path / folder), *command[1:])
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "r.html").exists()


def test_a_bad_run_is_named_and_the_others_still_written(tmp_path):
    write_run(tmp_path / "good.h5", replace(CELLS[0], cycles=20))
    with RunWriter.create(tmp_path / "bad.h5", {"cycler": {"voltage": COLUMNS["cycler"]["voltage"]}}) as w:
        w.append("cycler", time=np.arange(3.0), voltage=np.full(3, 3.7))  # no current: cannot be summarised
    (tmp_path / "notes.h5").write_bytes(b"not an HDF5 file")
    out = cellrig("analyze", str(tmp_path), "--out", str(tmp_path / "tables"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"not analysed: {tmp_path / 'bad.h5'}: KeyError" in out.stderr
    assert f"skipped: {tmp_path / 'notes.h5'}" in out.stderr
    assert pd.read_csv(tmp_path / "tables" / "errors.csv")["path"].tolist() == [str(tmp_path / "bad.h5")]
    assert pd.read_parquet(tmp_path / "tables" / "cycles.parquet")["cell_id"].unique().tolist() == ["C0"]
