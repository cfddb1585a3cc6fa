"""Campaign outputs: per-cycle, life and catalog tables (Parquet and CSV) and a self-contained HTML report.

The per-cycle table carries Battery Data Format labels (``BDF_NAMES``, ontology 1.3.0, pinned
in the Parquet metadata as docs/analysis.md §3.5 asks).  The report embeds every figure
as a base64 PNG, so the one HTML file opens anywhere with no network.  Its sections are the
``SECTIONS`` table: each builder returns HTML, or None where the campaign has nothing to show
(no pulses, a single temperature).
"""

import html
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..storage import Campaign, RunFileError, open_run, run_file
from . import plots
from .characterisation import rate_capability
from .cycles import to_bdf
from .early import FEATURES, FINAL_CYCLE, fit_cycle_life, run_features
from .ica import dqdv
from .life import at_main_rate, measured_cycles
from .parallel import CampaignAnalysis, Progress
from .safety import SafetyResult, Verdict, abuse_result, marks, passes
from .steps import DIRECTIONS, PULSE, find_steps, read_stream

BDF_ONTOLOGY = "1.3.0"
SELECTED_CYCLES = 5  # cycles drawn in the voltage and dQ/dV figures, evenly spread over life


def _ignore(done: int) -> None:
    """Progress sink that discards the count."""


def cycles_table(analysis: CampaignAnalysis) -> pd.DataFrame:
    """Get every run's per-cycle summary as one table: ``run_id``, ``cell_id``, then BDF-labelled columns."""
    table = analysis.cycles.copy()
    table.attrs = {}
    out = to_bdf(table)
    out.attrs = {"bdf_ontology": BDF_ONTOLOGY, "bdf_terms": out.attrs["bdf_terms"]}
    return out


def write_tables(analysis: CampaignAnalysis, campaign: Campaign, out: Path) -> list[Path]:
    """Write the per-cycle summaries, life metrics and catalog as Parquet and CSV (and the failures as CSV)."""
    out.mkdir(parents=True, exist_ok=True)
    tables = {"cycles": cycles_table(analysis), "life": analysis.life.reset_index(), "catalog": campaign.catalog}
    written = []
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
        df.to_csv(out / f"{name}.csv", index=False)
        written += [out / f"{name}.parquet", out / f"{name}.csv"]
    if not analysis.errors.empty:
        analysis.errors.to_csv(out / "errors.csv", index=False)
        written.append(out / "errors.csv")
    return written


@dataclass(frozen=True)
class ReportData:
    """What the report draws: one row per analysed run (``cells``) and every cycle (``cycles``)."""

    cells: pd.DataFrame  # catalog + life metrics + nominal, first-cycle capacity, energy, DCIR, deviation
    cycles: pd.DataFrame  # per-cycle summaries with a ``retention`` column (NaN where not a valid cycle)
    errors: pd.DataFrame
    tolerance: float  # ± % of nominal
    colours: dict[str, str]  # chemistry -> colour
    abuse: tuple[str, ...] = ()  # paths of the abuse-test runs (left out of the cycle-life sections)
    sweeps: tuple[str, ...] = ()  # paths of temperature sweeps (left out of the cycle-life sections, shown apart)
    hppc: tuple[str, ...] = ()  # paths of HPPC runs (pulse resistance vs SOC, shown apart)
    rates: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # (cell, chemistry) -> rate table


def _rate_tables(analysis: CampaignAnalysis, paths: tuple[str, ...]) -> dict[tuple[str, str], pd.DataFrame]:
    """Rate capability of each analysed run of ``paths`` from its summary in the campaign analysis."""
    tables = {}
    for _, run in analysis.life[analysis.life.index.isin(paths)].iterrows():
        summary = analysis.cycles[analysis.cycles["run_id"] == run["run_id"]]
        summary.attrs = {"nominal_capacity": run["reference_capacity"] if run["reference"] == "nominal" else None}
        tables[str(run["cell_id"]), str(run["chemistry"])] = rate_capability(summary)
    return tables


def _protocol(path: str) -> dict[str, Any]:
    """A run's protocol metadata (empty if the file cannot be read)."""
    try:
        with run_file(path) as f:
            return f.meta("protocol")
    except (RunFileError, OSError):
        return {}


def report_data(analysis: CampaignAnalysis, tolerance: float) -> ReportData:
    """Join life metrics, nominal capacities and first-cycle numbers per run; add retention to every cycle.

    Abuse-test runs (protocol kind ``abuse``) are set apart for their own section: they have no
    cycle life, and a run with no cycler stream is no failure.
    """
    paths = [*map(str, analysis.life.index), *analysis.errors["path"], *analysis.others["path"]]
    protocols = {p: _protocol(p) for p in paths}
    abuse = tuple(p for p, meta in protocols.items() if meta.get("kind") == "abuse")

    def characterisation(word: str) -> tuple[str, ...]:
        return tuple(
            p
            for p, meta in protocols.items()
            if meta.get("kind") == "characterisation" and word in meta.get("name", "")
        )

    sweeps, hppc, rates = characterisation("temperature"), characterisation("hppc"), characterisation("rate")
    apart = [*abuse, *sweeps, *hppc, *rates]  # no cycle life to show: each has its own figure or section
    rate_tables = _rate_tables(analysis, rates)
    if apart:
        life = analysis.life[~analysis.life.index.isin(apart)]
        kept = set(life["run_id"]) if "run_id" in life else set()
        analysis = replace(
            analysis,
            life=life,
            cycles=analysis.cycles[analysis.cycles["run_id"].isin(kept)],
            errors=analysis.errors[~analysis.errors["path"].isin(apart)],
        )
    cells = analysis.life.reset_index()
    cells["chemistry"] = cells["chemistry"].fillna("unknown").astype(str)
    cells["censored"] = cells["censored"].fillna(True).astype(bool)  # a run with no cycle has no EOL yet
    cells["nominal_capacity"] = cells["reference_capacity"].where(cells["reference"] == "nominal")
    reference = cells.set_index("run_id")["reference_capacity"]
    cycles = analysis.cycles.copy()
    measured, valid = measured_cycles(cycles), at_main_rate(cycles, by="run_id")  # valid: no RPT or pulse test
    relative = cycles["discharge_capacity"] / cycles["run_id"].map(reference).astype(float)
    cycles["retention"] = relative.where(valid)
    cycles["other_rate_retention"] = relative.where(measured & ~valid)  # RPTs: drawn apart
    initial = ["discharge_capacity", "discharge_energy", "dc_internal_resistance"]
    first = cycles[measured].groupby("run_id")[initial].first()
    first = first.set_axis(["initial_capacity", "initial_energy", "initial_dcir"], axis=1)
    cells = cells.join(first, on="run_id")
    cells["capacity_deviation"] = 100 * (cells["initial_capacity"] / cells["nominal_capacity"] - 1)
    cells["initial_dcir_mohm"] = 1e3 * cells["initial_dcir"]
    colours = plots.chemistry_colours(cells["chemistry"])
    return ReportData(cells, cycles, analysis.errors, tolerance, colours, abuse, sweeps, hppc, rate_tables)


def _figure(fig: Figure, alt: str, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(alt)}" src="{plots.data_uri(fig)}"><figcaption>{caption}</figcaption></figure>'
    )


def _cycle_number(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.0f}"


def _summary(d: ReportData) -> str:
    cells = d.cells
    if cells.empty:
        apart = len(d.abuse) + len(d.sweeps) + len(d.hppc) + len(d.rates)
        return f"<p>No cycle-life runs; {apart} characterisation or abuse runs, each in its section below.</p>"
    chemistries = ", ".join(f"{c} ({n})" for c, n in cells["chemistry"].value_counts().sort_index().items())
    temperatures = ", ".join(f"{t:g}" for t in sorted(cells["temperature"].dropna().unique())) or "not recorded"
    observed = cells[~cells["censored"]].sort_values("eol_robust")
    censored = cells[cells["censored"]]
    items = [f"{len(cells)} cells; chemistries: {html.escape(chemistries)}; set temperatures: {temperatures} °C"]
    if len(observed):
        worst, best = observed.iloc[0], observed.iloc[-1]
        items.append(
            f"cycle life to 80 % retention (robust crossing): shortest {worst['eol_robust']:.0f} cycles "
            f"({html.escape(str(worst['cell_id']))}), longest {best['eol_robust']:.0f} cycles "
            f"({html.escape(str(best['cell_id']))})"
        )
    if len(censored):
        longest = censored.sort_values("last_cycle").iloc[-1]
        items.append(
            f"{len(censored)} cells still above 80 % at their last cycle (censored); the longest ran "
            f"{longest['last_cycle']:.0f} cycles ({html.escape(str(longest['cell_id']))})"
        )
    if "specific_energy" in cells and cells["specific_energy"].notna().any():
        energy = cells.groupby("chemistry")["specific_energy"].mean().dropna()
        items.append(
            "specific energy at the first cycle (cell level, at the protocol's rate): "
            + html.escape(", ".join(f"{c} {e:.0f} Wh/kg" for c, e in energy.items()))
        )
    known = cells["capacity_deviation"].dropna()
    within = (known.abs() <= d.tolerance).sum()
    items.append(
        f"capacity yield: {within} of {len(known)} cells with a nominal capacity are within ±{d.tolerance:g} % "
        "of it at the first cycle"
    )
    if not d.errors.empty:
        items.append(f"{len(d.errors)} run files could not be analysed: " + html.escape(", ".join(d.errors["path"])))
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _fade(d: ReportData) -> str | None:
    if d.cells.empty:
        return None
    return _figure(
        plots.fade(d.cells, d.cycles, d.colours),
        "capacity fade",
        "Discharge capacity relative to each cell's reference capacity (nominal where known), of the cycles at "
        "the run's own rate; squares mark cycles at another rate (reference performance tests, not on the fade "
        "curve), × the end of life (robust crossing of 80 %), ○ the Bacon–Watts knee.",
    )


def _representatives(d: ReportData) -> dict[str, tuple[str, list[int]]]:
    """Per chemistry, the cell of median projected life and ``SELECTED_CYCLES`` cycles spread over its life."""
    chosen = {}
    for chemistry, group in d.cells.groupby("chemistry"):
        cell = group.sort_values("projected_eol").iloc[(len(group) - 1) // 2]
        valid = d.cycles.loc[(d.cycles["run_id"] == cell["run_id"]) & d.cycles["retention"].notna(), "cycle"]
        if len(valid):
            wanted = np.linspace(valid.min(), valid.max(), SELECTED_CYCLES).round()
            cycles = sorted(set(valid[valid.isin(wanted)].astype(int)))
            chosen[f"{chemistry}: {cell['cell_id']}"] = (cell["path"], cycles)
    return chosen


def voltage_rows(path: str, cycles: list[int]) -> pd.DataFrame:
    """Get capacity and voltage of every row of the charge and discharge steps (pulses left out) of ``cycles``."""
    run = open_run(path)
    columns = read_stream(run)
    s = find_steps(columns, nominal_capacity=run.meta.get("cell", {}).get("nominal_capacity_Ah"))
    t, i, v = columns["time"], columns["current"], columns["voltage"]
    frames = []
    for k in np.flatnonzero(np.isin(s.cycle, cycles) & (s.sign != 0) & (s.kind != PULSE)):
        rows = np.arange(s.start[k], s.end[k] + 1)
        passed = np.abs(i[rows]) * (t[rows] - t[np.maximum(rows - 1, 0)]) / 3600.0
        direction = DIRECTIONS[s.sign[k] + 1]
        frames.append(pd.DataFrame({"cycle": s.cycle[k], "direction": direction, "voltage": v[rows], "dq": passed}))
    out = pd.concat(frames, ignore_index=True)
    out["capacity"] = out.groupby(["cycle", "direction"])["dq"].cumsum()
    return out


def _voltage(d: ReportData) -> str | None:
    chosen = _representatives(d)
    if not chosen:
        return None
    curves = {title: voltage_rows(path, cycles) for title, (path, cycles) in chosen.items()}
    return _figure(
        plots.voltage_curves(curves),
        "voltage curves",
        "Cell voltage vs capacity passed in each charge and discharge step of cycles spread over life, for the "
        "cell of median life of each chemistry.",
    )


def _dqdv(d: ReportData) -> str | None:
    chosen = _representatives(d)
    if not chosen:
        return None
    curves = {}
    for title, (path, cycles) in chosen.items():
        curve = dqdv(path)
        curve = curve.sel(cycle=curve["cycle"].isin(cycles))
        curves[title] = curve.dropna("voltage", how="all")
    return _figure(
        plots.dqdv(curves),
        "incremental capacity",
        "|dQ/dV| of the CC discharge, interpolated on a 2 mV grid and smoothed with a 10 mV FWHM Gaussian "
        "(cellpy's method, docs/analysis.md §1.2); peaks that shrink or shift show where capacity is lost.",
    )


def _dcir(d: ReportData) -> str | None:
    parts = []
    if d.cycles["dc_internal_resistance"].notna().any():
        parts.append(
            _figure(
                plots.dcir(d.cells, d.cycles, d.colours),
                "DC internal resistance",
                "|ΔV/ΔI| over each cycle's last discharge pulse (FreedomCAR HPPC definition, docs/analysis.md §1.1).",
            )
        )
    if d.hppc:
        from .characterisation import pulse_resistance

        tables = {_cell_of(path): pulse_resistance(path) for path in d.hppc}
        parts.append(
            _figure(
                plots.pulse_resistance(tables, plots.chemistry_colours([c for _, c in tables]) | d.colours),
                "pulse resistance vs state of charge",
                "HPPC runs: |ΔV/ΔI| of each 10 s discharge and regen pulse at its state of charge, counted from "
                "the full charge over the capacity the run measured.",
            )
        )
    return "".join(parts) or None


def _cell_of(path: str) -> tuple[str, str]:
    """(cell id, chemistry) of a run."""
    with run_file(path) as f:
        return str(f.cell.get("id", Path(path).stem)), str(f.cell.get("chemistry", "unknown"))


def _rates(d: ReportData) -> str | None:
    if not d.rates:
        return None
    return _figure(
        plots.rate_capability(d.rates, plots.chemistry_colours([c for _, c in d.rates]) | d.colours),
        "rate capability",
        "Discharge capacity of the rate-capability runs at each rate (the cycle's mean discharge current over the "
        "nominal capacity), after the same charge, and relative to the lowest rate.",
    )


def _temperature(d: ReportData) -> str | None:
    if d.sweeps:
        return _sweeps(d)
    if d.cells["temperature"].round().nunique() < 2:
        return None
    return _figure(
        plots.temperature(d.cells, d.colours),
        "capacity and energy vs temperature",
        "First-cycle discharge capacity and energy of each cell at its set temperature; "
        "lines join the chemistry means.",
    )


def _sweeps(d: ReportData) -> str:
    """Capacity at each chamber temperature of the temperature-sweep runs, one line per cell."""
    from .temperature import capacity_vs_temperature

    tables = {_cell_of(path): capacity_vs_temperature(path) for path in d.sweeps}
    colours = plots.chemistry_colours([c for _, c in tables]) | d.colours
    return _figure(
        plots.sweeps(tables, colours),
        "capacity and retention vs chamber temperature",
        "Discharge capacity at each chamber temperature of the temperature-sweep runs (charged at 25 °C each "
        "time), and relative to the discharge nearest 25 °C.",
    )


def _consistency(d: ReportData) -> str | None:
    if d.cells.empty:
        return None
    return _figure(
        plots.consistency(d.cells, d.tolerance),
        "consistency histograms",
        f"Spread of the first cycle across cells; the shaded band is the spec of ±{d.tolerance:g} % of nominal.",
    )


LIFE_COLUMNS = {  # header -> function of a cells row
    "cell": lambda r: str(r["cell_id"]),
    "chemistry": lambda r: r["chemistry"],
    "T (°C)": lambda r: "—" if pd.isna(r["temperature"]) else f"{r['temperature']:g}",
    "protocol": lambda r: str(r["protocol"]),
    "cycles": lambda r: f"{r['last_cycle']}",
    "Q first (Ah)": lambda r: f"{r['initial_capacity']:.4f}",
    "Wh/kg": lambda r: "—" if pd.isna(r.get("specific_energy")) else f"{r['specific_energy']:.0f}",
    "retention last (%)": lambda r: f"{100 * r['last_retention']:.1f}",
    "EOL first": lambda r: _cycle_number(r["eol_first"]),
    "EOL robust": lambda r: "censored" if r["censored"] else _cycle_number(r["eol_robust"]),
    "projected EOL": lambda r: (
        _cycle_number(r["projected_eol"])
        + (f" ± {r['projected_eol_std']:.0f}" if r["censored"] and np.isfinite(r["projected_eol_std"]) else "")
    ),
    "knee": lambda r: _cycle_number(r["knee"]),
    "knee onset": lambda r: _cycle_number(r["knee_onset"]),
    "status": lambda r: str(r["status"]),
}


def _life_table(d: ReportData) -> str | None:
    if d.cells.empty:
        return None
    head = "".join(f"<th>{html.escape(h)}</th>" for h in LIFE_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(row))}</td>" for cell in LIFE_COLUMNS.values()) + "</tr>"
        for _, row in d.cells.sort_values(["chemistry", "cell_id"]).iterrows()
    )
    note = (
        "Cycles are cycle numbers. EOL first: first cycle below 80 %; robust: first of 5 consecutive cycles below "
        "it; a censored cell's EOL is projected from a straight line fitted since its knee, ± one standard deviation."
    )
    return f"<p>{note}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _at(value: float | None, when: float | None, unit: str = "°C") -> str:
    if value is None:
        return "not reached"
    return f"{value:.1f} {unit}" + (f" at {when:.0f} s" if when is not None else "")


def _verdict_cell(verdict: Verdict) -> str:
    mark = {True: "✓", False: "✗", None: "?"}
    criteria = "; ".join(f"{mark[met]} {html.escape(text)}" for text, met, _ in verdict.criteria)
    if verdict.state == "provisional":
        criteria += " (? judged by observation, and no observation is recorded in the run)"
    return f"<b>{verdict.state}</b><br><small>{criteria}</small>"


def _evidence(result: SafetyResult) -> str:
    e = result.eucar_evidence
    items = [f"rule: {e.get('rule')}"]
    items.append(
        f"thermal runaway (dT/dt ≥ {result.options.trigger_rate:g} °C/s): {'yes' if e.get('thermal_runaway') else 'no'}"
    )
    items.append(
        f"internal short (voltage drop ≥ {1e3 * result.options.short_drop_v:.0f} mV): "
        f"{'yes' if e.get('internal_short') else 'no'}"
    )
    if e.get("mass_loss_g") is not None:
        items.append(f"mass loss {e['mass_loss_g']:.2f} g")
    if e.get("adaptation") and e.get("mass_loss_g") is not None:
        items.append(e["adaptation"])
    seen = [
        k
        for k in ("protection_activated", "damaged", "leakage", "venting", "smoke", "fire", "rupture", "explosion")
        if e.get(k)
    ]
    items.append(
        "observed: " + (", ".join(seen) if seen else "none")
        if result.observed is not None
        else "no operator observations recorded"
    )
    return "<br>".join(html.escape(str(i)) for i in items)


def _abuse(d: ReportData) -> str:
    if not d.abuse:
        return "<p>No abuse-test runs (protocol kind <code>abuse</code>) in this campaign.</p>"
    figures, rows, failed = [], [], []
    for path in d.abuse:
        try:
            info, result, traces = abuse_result(path)
        except Exception as exc:  # one unreadable abuse run must not sink the report
            failed.append(f"{html.escape(Path(path).name)}: {html.escape(f'{type(exc).__name__}: {exc}')}")
            continue
        title = f"{info['cell_id']}: {info['protocol'] or Path(path).stem}"
        figures.append(
            _figure(
                plots.abuse_traces(title, traces, marks(result)),
                f"abuse test {title}",
                f"{html.escape(title)}: {', '.join(html.escape(k) for k in traces)} vs time; "
                "T1 (self-heating onset), T2 (thermal runaway) and T3 (peak) marked; dotted: the short.",
            )
        )
        criteria = info["criteria"]
        verdict = _verdict_cell(passes(criteria, result)) if criteria else "no pass criteria in the protocol"
        rows.append(
            [
                html.escape(str(info["cell_id"])),
                html.escape(str(info["protocol"])),
                _at(result.t1, result.t1_time),
                _at(result.t2, result.t2_time),
                _at(result.t3, result.t3_time),
                f"{result.max_rate:.2f} °C/s",
                "—" if result.short_time is None else f"{result.short_time:.1f} s",
                "—" if result.force_at_short is None else f"{result.force_at_short:.3g}",
                f"<b>{result.eucar_level}</b>",
                _evidence(result),
                html.escape(criteria["clause"] if criteria else "—"),
                verdict,
            ]
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "cell",
            "protocol",
            "T1",
            "T2",
            "T3",
            "max dT/dt",
            "short",
            "force at short",
            "EUCAR",
            "evidence",
            "standard",
            "verdict",
        )
    )
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    note = (
        "<p>T1: first temperature with dT/dt ≥ 0.02 °C/min (long trailing regression window); T2: first with "
        "dT/dt ≥ 1 °C/s (short window); T3: the maximum. EUCAR hazard levels 0–7 follow the evidence shown: fire, "
        "venting, rupture and explosion are operator observations (<code>cellrig observe</code>, or the run's "
        "<code>meta/observations</code>), "
        "never inferred from temperature.</p>"
    )
    errors = f"<p>Not analysed: {'; '.join(failed)}</p>" if failed else ""
    table = f'<table class="abuse"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>' if rows else ""
    return note + "".join(figures) + table + errors


MIN_EARLY_CELLS = 5  # cells with 100 complete cycles and an observed end of life, to fit and cross-validate


def _early_window(cells: pd.DataFrame) -> int:
    """Severson's 100 cycles if enough cells with an observed end of life ran them; else the longest window
    (a multiple of 10, at least 20) that enough such cells outlived — for campaigns whose cells die young."""
    lives = cells.loc[~cells["censored"].astype(bool), "eol_robust"].dropna().sort_values(ascending=False)
    if len(lives) < MIN_EARLY_CELLS or lives.iloc[MIN_EARLY_CELLS - 1] > FINAL_CYCLE:
        return FINAL_CYCLE
    return max(20, int(lives.iloc[MIN_EARLY_CELLS - 1] - 1) // 10 * 10)


def _early(d: ReportData) -> str:
    final = _early_window(d.cells)
    cells = d.cells[d.cells["last_cycle"].fillna(0) >= final]
    rows = {}
    for path in cells["path"]:
        try:
            rows[path] = run_features(path, final=final)
        except Exception:  # too few cycles, or a run the features cannot be read from: left out of the model
            continue
    features = pd.DataFrame.from_dict(rows, orient="index", columns=["run", "cell_id", *FEATURES])
    features = features[np.isfinite(features[list(FEATURES)].to_numpy(float)).all(axis=1)]
    cells = cells[cells["path"].isin(features.index)].set_index("path")
    observed = cells[~cells["censored"]]
    if len(observed) < MIN_EARLY_CELLS:
        return (
            f"<p>Early prediction (Severson et al. 2019: ΔQ<sub>100−10</sub>(V) and capacity-fade features of the "
            f"first {final} cycles, elastic net) needs at least {MIN_EARLY_CELLS} cells with {final} "
            f"complete cycles and an observed end of life; this campaign has {len(observed)}.</p>"
        )
    lives = observed["eol_robust"].astype(float)
    model = fit_cycle_life(features.loc[observed.index], lives, folds=min(5, len(observed)))
    predicted = pd.Series(model.cv_predicted, index=observed.index)
    running = cells[cells["censored"]]
    pending = None
    if len(running):
        pending = running[["last_cycle"]].assign(predicted=model.predict(features.loc[running.index]).to_numpy())
    figure = _figure(
        plots.early_prediction(lives, predicted, pending),
        "early life prediction",
        f"Cycle life (robust 80 % crossing) predicted from the first {final} cycles"
        + (" (not Severson's 100: too few cells lived that long)" if final != FINAL_CYCLE else "")
        + f" by an elastic net on "
        f"{len(model.columns)} Severson features, each cell predicted by a model fitted without it "
        f"({min(5, len(observed))}-fold cross-validation). Cross-validated error: RMSE {model.cv_rmse:.0f} cycles, "
        f"{model.cv_mape:.1f} % mean absolute error (predicting the mean life: {model.baseline_rmse:.0f} cycles, "
        f"{model.baseline_mape:.1f} %).",
    )
    body = "".join(
        f"<tr><td>{html.escape(str(cells.loc[p, 'cell_id']))}</td><td>{lives[p]:.0f}</td><td>{predicted[p]:.0f}</td>"
        f"<td>{100 * (predicted[p] - lives[p]) / lives[p]:+.1f}</td></tr>"
        for p in observed.index
    )
    if pending is not None:
        body += "".join(
            f"<tr><td>{html.escape(str(cells.loc[p, 'cell_id']))}</td><td>running ({r['last_cycle']:.0f} cycles)</td>"
            f"<td>{r['predicted']:.0f}</td><td>—</td></tr>"
            for p, r in pending.iterrows()
        )
    table = (
        "<table><thead><tr><th>cell</th><th>observed life</th><th>predicted</th><th>error (%)</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
    summary = (
        f"<p>Cross-validated error over {len(observed)} cells: <b>RMSE {model.cv_rmse:.0f} cycles, "
        f"{model.cv_mape:.1f} %</b>; features kept by the elastic net: "
        f"{html.escape(', '.join(model.kept) or 'none')}.</p>"
    )
    return summary + figure + table


#: (heading, builder) in report order.  EXTENSION POINT: a builder returns the section's HTML, or None
#: to leave the section out.  The abuse-test and early-prediction sections always appear, saying so
#: when the campaign has no such runs.
SECTIONS: tuple[tuple[str, Callable[[ReportData], str | None]], ...] = (
    ("Summary", _summary),
    ("Capacity fade", _fade),
    ("Voltage curves", _voltage),
    ("Incremental capacity (dQ/dV)", _dqdv),
    ("DC internal resistance", _dcir),
    ("Rate capability", _rates),
    ("Temperature", _temperature),
    ("Consistency", _consistency),
    ("Life metrics", _life_table),
    ("Early life prediction", _early),
    ("Abuse tests", _abuse),
)

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { font-size: .9em; color: #555; }
table { border-collapse: collapse; font-size: .85em; } th, td { border: 1px solid #ccc; padding: .25em .5em; }
td { text-align: right; } td:first-child, td:nth-child(2), td:nth-child(4) { text-align: left; }
"""


def render_report(analysis: CampaignAnalysis, title: str, tolerance: float, progress: Progress = _ignore) -> str:
    """Get the campaign report as one self-contained HTML page; ``progress(sections_done)`` after each section."""
    data = report_data(analysis, tolerance)
    parts = []
    for done, (heading, build) in enumerate(SECTIONS, start=1):
        body = build(data)
        if body is not None:
            parts.append(f"<section><h2>{html.escape(heading)}</h2>{body}</section>")
        progress(done)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>\n"
    )
