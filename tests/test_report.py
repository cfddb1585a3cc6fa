"""Campaign tables and the HTML report, from synthetic runs with known truth (the library, without the CLI)."""

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cellrig.analysis.cycles import BDF_NAMES
from cellrig.analysis.parallel import analyse_campaign
from cellrig.analysis.report import SECTIONS, cycles_table, render_report, report_data, voltage_rows
from cellrig.analysis.synthetic import FadeCurve, SyntheticAbuse, SyntheticCell, write_abuse_run, write_run
from cellrig.cli import main
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
    analysis = analyse_campaign(open_campaign(folder), scheduler="synchronous", progress=done.append)
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
    assert headings == [heading for heading, _ in SECTIONS if heading != "Rate capability"]  # no rate runs here
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


# -- abuse-test and early-prediction sections ---------------------------------------------------------

EARLY = [
    replace(
        SyntheticCell(cycles=150, samples=60),
        cell_id=f"E{i}",
        fade=FadeCurve(knee=0.8 * eol, onset=0.68 * eol, eol=eol),
        seed=100 + i,
    )
    for i, eol in enumerate((108, 113, 118, 124, 130, 136, 142, 170))  # E7 still above 80 % at 150 cycles
]
ABUSE = [
    SyntheticAbuse(cell_id="N1", protocol="nail-gbt31485", duration=3000.0, seed=1),  # stopped before 1 h
    SyntheticAbuse(
        cell_id="N2",
        protocol="crush-un38.3-t6",
        runaway=False,
        duration=6 * 3600 + 700,
        observations=(("venting", True), ("mass_before_g", 70.0), ("mass_after_g", 68.0), ("electrolyte_mass_g", 10.0)),
        seed=2,
    ),
]


@pytest.fixture(scope="module")
def full_campaign(tmp_path_factory):
    """Cycle-life cells with 100+ cycles and two abuse tests (one runaway nail, one vented crush)."""
    folder = tmp_path_factory.mktemp("full")
    for cell in EARLY:
        write_run(folder / f"{cell.cell_id}.h5", cell)
    for test in ABUSE:
        write_abuse_run(folder / f"{test.cell_id}.h5", test)
    analysis = analyse_campaign(open_campaign(folder), scheduler="synchronous")
    return folder, analysis, render_report(analysis, "full campaign", 3.0)


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else None]


def test_abuse_runs_get_their_own_section_not_errors_or_cycle_life(full_campaign):
    _, analysis, page = full_campaign
    assert analysis.errors.empty and len(analysis.others) == len(ABUSE)  # no cycler stream: not errors ...
    data = report_data(analysis, 3.0)
    assert data.errors.empty and len(data.abuse) == len(ABUSE)  # ... the report gives them their own section
    assert set(data.cells["cell_id"]) == {c.cell_id for c in EARLY}
    assert "could not be analysed" not in _section(page, "Summary")


def test_the_abuse_section_marks_t1_t2_t3_and_tabulates_eucar_with_evidence_and_verdicts(full_campaign):
    _, _, page = full_campaign
    section = _section(page, "Abuse tests")
    assert section.count("<img") == len(ABUSE)
    assert 'alt="abuse test N1: nail-gbt31485"' in section
    rows = re.findall(r"<tr><td>(N\d)</td>(.*?)</tr>", section)
    assert [r[0] for r in rows] == ["N1", "N2"]
    cells = {name: re.findall(r"<td>(.*?)</td>", "<td>" + rest.split("<td>", 1)[1]) for name, rest in rows}
    nail, crush = cells["N1"], cells["N2"]
    # N1: runaway; T2 at the first ≥ 1 °C/s after the 30 s onset, T3 the 650 °C peak; EUCAR 3 (thermal runaway)
    assert nail[1].startswith("27.") or nail[1].startswith("28.")  # T1 near the 25 °C start
    assert "not reached" not in nail[2] and float(nail[3].split()[0]) == pytest.approx(650.0, abs=0.5)
    assert nail[7] == "<b>3</b>" and "thermal runaway (dT/dt ≥ 1 °C/s): yes" in nail[8]
    assert nail[9] == "GB/T 31485-2015 §6.2.8" and "<b>FAIL</b>" in nail[10] and "✗ observed 1 h" in nail[10]
    # N2: no runaway but vented (recorded): EUCAR 4, T2 not reached; UN 38.3 T.6 passes (below 170 °C, 6 h)
    assert crush[2] == "not reached" and crush[7] == "<b>4</b>" and "observed: venting" in crush[8]
    assert crush[9] == "UN 38.3 T.6 crush" and "<b>PASS</b>" in crush[10] and "✓ external temperature" in crush[10]


def test_the_early_prediction_section_plots_cross_validated_predictions(full_campaign):
    _, _, page = full_campaign
    section = _section(page, "Early life prediction")
    assert section.count("<img") == 1 and "Cross-validated error over 7 cells" in section
    rmse = float(re.search(r"RMSE (\d+) cycles", section).group(1))
    assert 0 < rmse < 100
    assert len(re.findall(r"<tr><td>E\d</td>", section)) == len(EARLY)
    assert "<td>E7</td><td>running (150 cycles)</td>" in section


def test_sections_say_so_when_the_campaign_has_no_such_runs(campaign):
    _, _, analysis, _ = campaign
    page = render_report(analysis, "no abuse", 3.0)
    assert "No abuse-test runs" in _section(page, "Abuse tests")
    assert "needs at least 5 cells with 100 complete cycles" in _section(page, "Early life prediction")


def test_a_folder_of_abuse_tests_alone_gets_a_report_of_them(tmp_path):
    for i, cell in enumerate(("N1", "N2")):
        write_abuse_run(tmp_path / f"{cell}.h5", SyntheticAbuse(cell_id=cell, duration=1800.0, seed=i + 3))
    result = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No cycle-life runs; 2 characterisation or abuse runs" in _section(page, "Summary")
    assert all(f'alt="abuse test {cell}: nail-gbt31485"' in _section(page, "Abuse tests") for cell in ("N1", "N2"))
    assert "<h2>Capacity fade</h2>" not in page
