"""Campaign tables and the HTML report, from synthetic runs with known truth (the library, without the CLI)."""

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cellrig.analysis.cycles import BDF_NAMES
from cellrig.analysis.report import SECTIONS, analyse, cycles_table, render_report, report_data, voltage_rows
from cellrig.analysis.synthetic import FadeCurve, SyntheticCell, write_run
from cellrig.storage import open_campaign

BASE = SyntheticCell(cycles=120, samples=60)
#: 6 cells × 120 cycles: two chemistries, two set temperatures; cells 0–1 reach 80 % within 120 cycles.
CELLS = [
    replace(
        BASE,
        cell_id=f"C{i}",
        chemistry="NMC811/graphite" if i < 3 else "LFP/graphite",
        ambient=25.0 if i % 2 else 45.0,
        fade=FadeCurve(knee=50 + 10 * i, eol=90 + 15 * i),
        seed=i + 1,
    )
    for i in range(6)
]


def write_cells(folder) -> dict[str, pd.DataFrame]:
    """Write the campaign; get each cell's per-cycle truth."""
    return {c.cell_id: write_run(folder / f"{c.cell_id}.h5", c).truth for c in CELLS}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaign")
    truth = write_cells(folder)
    done = []
    analysis = analyse(open_campaign(folder), "synchronous", progress=done.append)
    return folder, truth, analysis, done


def test_analyse_reports_every_finished_run(campaign):
    _, _, analysis, done = campaign
    assert done == list(range(1, len(CELLS) + 1))
    assert analysis.errors.empty and len(analysis.life) == len(CELLS)


def test_the_cycles_table_has_bdf_names_and_the_true_capacities(campaign):
    _, truth, analysis, _ = campaign
    table = cycles_table(analysis)
    assert list(table.columns[:2]) == ["run_id", "cell_id"]
    assert set(table.columns[2:]) <= set(BDF_NAMES.values())
    assert table.attrs["bdf_ontology"] == "1.3.0"
    for cell_id, expected in truth.items():
        mine = table[table["cell_id"] == cell_id]
        assert mine["Cycle Count / 1"].tolist() == expected["cycle"].tolist()
        np.testing.assert_allclose(mine["Cycle Discharging Capacity / Ah"], expected["discharge_capacity"], rtol=1e-9)


def test_report_data_joins_retention_first_cycle_and_spec_deviation(campaign):
    _, truth, analysis, _ = campaign
    data = report_data(analysis, tolerance=3.0)
    cells = data.cells.set_index("cell_id")
    for cell in CELLS:
        first = truth[cell.cell_id]["discharge_capacity"].iloc[0]
        assert cells.loc[cell.cell_id, "initial_capacity"] == pytest.approx(first, rel=1e-9)
        assert cells.loc[cell.cell_id, "capacity_deviation"] == pytest.approx(100 * (first / cell.capacity - 1))
        mine = data.cycles[data.cycles["cell_id"] == cell.cell_id]
        np.testing.assert_allclose(mine["retention"], truth[cell.cell_id]["discharge_capacity"] / cell.capacity)
    assert data.colours.keys() == {"NMC811/graphite", "LFP/graphite"}


def test_voltage_rows_integrate_to_each_cycles_charge_and_discharge(campaign):
    folder, truth, _, _ = campaign
    rows = voltage_rows(str(folder / "C0.h5"), [1, 60, 120])
    ends = rows.groupby(["cycle", "direction"])["capacity"].max().unstack()
    expected = truth["C0"].set_index("cycle").loc[[1, 60, 120]]
    pulse = CELLS[0].pulse_rate * CELLS[0].capacity * CELLS[0].pulse_s / 3600  # the DCIR pulse is left out
    np.testing.assert_allclose(ends["charge"], expected["charge_capacity"], rtol=1e-9)
    np.testing.assert_allclose(ends["discharge"], expected["discharge_capacity"] - pulse, rtol=1e-9)
    assert rows["voltage"].between(2.9, 4.21).all()


def test_report_has_every_section_a_summary_and_one_row_per_cell(campaign):
    _, _, analysis, _ = campaign
    done = []
    page = render_report(analysis, "test campaign", 3.0, done.append)
    assert done == list(range(1, len(SECTIONS) + 1))
    headings = re.findall(r"<h2>([^<]*)</h2>", page)
    assert headings == [heading for heading, _ in SECTIONS]
    assert page.count("<img") == 6  # fade, voltage, dQ/dV, DCIR, temperature, consistency
    assert re.findall(r'src="([^"]{0,22})', page) == ["data:image/png;base64,"] * 6
    summary = page[page.index("<h2>Summary") : page.index("<h2>Capacity fade")]
    assert "6 cells" in summary and "LFP/graphite (3)" in summary and "25, 45 °C" in summary
    assert "shortest 91 cycles (C0)" in summary and "longest 106 cycles (C1)" in summary  # EOL = 90 and 105 + noise
    assert "4 cells still above 80 %" in summary and "yield: 6 of 6 cells with a nominal capacity" in summary
    table = page[page.index("<h2>Life metrics") :]
    assert len(re.findall(r"<tr><td>C\d</td>", table)) == len(CELLS)
    assert table.count("<td>censored</td>") == 4


def test_sections_without_data_are_left_out(campaign):
    """At a single temperature there is no temperature figure (and no empty section for it)."""
    _, _, analysis, _ = campaign
    one_temperature = replace(analysis, life=analysis.life.assign(temperature=25.0))
    page = render_report(one_temperature, "one temperature", 3.0)
    assert "<h2>Temperature</h2>" not in page and page.count("<img") == 5


def test_yield_counts_cells_outside_the_spec(campaign):
    _, _, analysis, _ = campaign
    data = report_data(analysis, tolerance=3.0)
    deviation = data.cells["capacity_deviation"].abs().max()
    page = render_report(analysis, "tight spec", deviation / 2)
    inside = int((data.cells["capacity_deviation"].abs() <= deviation / 2).sum())
    assert inside < len(CELLS) and f"yield: {inside} of 6 cells" in page
