"""The report's figures: matplotlib ``Figure`` objects and their PNG data URIs.

Figures are built without pyplot (no global state, no GUI backend: ``savefig`` renders with
Agg), so they can be drawn from any thread.  Each function takes tidy tables and returns one
figure; colours follow the chemistry so a reader can compare families across figures.
"""

import base64
import io
from collections.abc import Callable, Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

EOL_RETENTION = 0.8
PANEL = (5.0, 3.6)  # inches per panel


def chemistry_colours(chemistries: Sequence[str]) -> dict[str, str]:
    """Get one tab10 colour per chemistry, in sorted order."""
    palette = mpl.colormaps["tab10"].colors
    return {c: to_hex(palette[i % len(palette)]) for i, c in enumerate(sorted(set(chemistries)))}


def data_uri(fig: Figure) -> str:
    """Get the figure as a base64 PNG ``data:`` URI (self-contained: no file, no URL)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _panels(count: int, title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(PANEL[0] * count, PANEL[1]), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)[0].tolist()
    fig.suptitle(title)
    return fig, axes


def _chemistry_legend(ax, colours: Mapping[str, str], extra: Sequence = ()) -> None:
    handles = [Line2D([], [], color=c, label=name) for name, c in colours.items()]
    ax.legend(handles=[*handles, *extra], fontsize="small")


def fade(cells: pd.DataFrame, cycles: pd.DataFrame, colours: Mapping[str, str]) -> Figure:
    """Retention vs cycle of every cell, other-rate cycles (□, RPTs), EOL (×) and knee (○) marked, 80 % line."""
    fig, (ax,) = _panels(1, "Capacity fade")
    for run_id, cell in cells.set_index("run_id").iterrows():
        mine = cycles[cycles["run_id"] == run_id]
        colour = colours[cell["chemistry"]]
        ax.plot(mine["cycle"], 100 * mine["retention"], color=colour, lw=0.8, alpha=0.8)
        ax.plot(mine["cycle"], 100 * mine["other_rate_retention"], "s", color=colour, ms=3)
        for column, marker in (("eol_robust", "x"), ("knee", "o")):
            at = mine.loc[mine["cycle"] == np.round(cell[column]), "retention"] if np.isfinite(cell[column]) else ()
            if len(at):
                ax.plot(cell[column], 100 * at.iloc[0], marker, color=colour, mfc="none", ms=7)
    ax.axhline(100 * EOL_RETENTION, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="cycle", ylabel="retention Qd / Q_ref (%)")
    markers = [
        Line2D([], [], marker="x", ls="", color="k", label="EOL (80 %)"),
        Line2D([], [], marker="o", ls="", mfc="none", color="k", label="knee"),
    ]
    if cycles["other_rate_retention"].notna().any():
        markers.append(Line2D([], [], marker="s", ls="", ms=3, color="k", label="other rate (RPT)"))
    _chemistry_legend(ax, colours, markers)
    return fig


def voltage_curves(curves: Mapping[str, pd.DataFrame]) -> Figure:
    """Voltage vs capacity of selected cycles, one panel per cell (``curves``: title → capacity, voltage, cycle,
    direction rows), charge solid and discharge dashed, coloured by cycle."""
    fig, axes = _panels(len(curves), "Voltage curves of selected cycles (charge solid, discharge dashed)")
    for ax, (title, df) in zip(axes, curves.items(), strict=True):
        cmap = mpl.colormaps["viridis"].resampled(max(df["cycle"].nunique(), 2))
        for k, (cycle, one) in enumerate(df.groupby("cycle")):
            for direction, style in (("charge", "-"), ("discharge", "--")):
                part = one[one["direction"] == direction]
                label = f"cycle {cycle}" if direction == "charge" else None
                ax.plot(part["capacity"], part["voltage"], style, color=cmap(k), lw=1, label=label)
        ax.set(title=title, xlabel="capacity (Ah)", ylabel="voltage (V)")
        ax.legend(fontsize="small")
    return fig


def dqdv(curves: Mapping[str, xr.DataArray]) -> Figure:
    """Incremental capacity of selected cycles, one panel per cell, coloured by cycle."""
    fig, axes = _panels(len(curves), "Incremental capacity dQ/dV (discharge)")
    for ax, (title, curve) in zip(axes, curves.items(), strict=True):
        cmap = mpl.colormaps["viridis"].resampled(max(curve.sizes["cycle"], 2))
        for k, cycle in enumerate(curve["cycle"].to_numpy()):
            ax.plot(curve["voltage"], curve.sel(cycle=cycle), color=cmap(k), lw=1, label=f"cycle {cycle}")
        ax.set(title=title, xlabel="voltage (V)", ylabel="dQ/dV (Ah/V)")
        ax.legend(fontsize="small")
    return fig


def dcir(cells: pd.DataFrame, cycles: pd.DataFrame, colours: Mapping[str, str]) -> Figure:
    """DC internal resistance (mΩ) vs cycle of every cell that has pulses."""
    fig, (ax,) = _panels(1, "DC internal resistance over life (10 s pulse)")
    for run_id, chemistry in cells.set_index("run_id")["chemistry"].items():
        mine = cycles[(cycles["run_id"] == run_id) & cycles["dc_internal_resistance"].notna()]
        ax.plot(mine["cycle"], 1e3 * mine["dc_internal_resistance"], color=colours[chemistry], lw=0.8, alpha=0.8)
    ax.set(xlabel="cycle", ylabel="DCIR (mΩ)")
    _chemistry_legend(ax, colours)
    return fig


def temperature(cells: pd.DataFrame, colours: Mapping[str, str]) -> Figure:
    """Initial discharge capacity and energy vs set temperature, cells as points, chemistry means as lines."""
    fig, axes = _panels(2, "Initial discharge capacity and energy vs temperature")
    for ax, (column, label) in zip(
        axes,
        (("initial_capacity", "discharge capacity (Ah)"), ("initial_energy", "discharge energy (Wh)")),
        strict=True,
    ):
        for chemistry, group in cells.groupby("chemistry"):
            ax.plot(group["temperature"], group[column], "o", color=colours[chemistry], alpha=0.6)
            means = group.groupby("temperature")[column].mean()
            ax.plot(means.index, means.to_numpy(), "-", color=colours[chemistry])
        ax.set(xlabel="set temperature (°C)", ylabel=label)
    _chemistry_legend(axes[0], colours)
    return fig


Curves = Callable[[pd.DataFrame], Sequence[tuple[pd.Series, pd.Series]]]


def _two_panels_per_cell(
    title: str,
    tables: Mapping[tuple[str, str], pd.DataFrame],
    colours: Mapping[str, str],
    curves: Curves,
    labels: Sequence[tuple[str, str]],
) -> tuple[Figure, list]:
    """Two panels with one line per (cell, chemistry) in each: ``curves(table)`` gives each panel's (x, y)."""
    fig, axes = _panels(2, title)
    for (cell, chemistry), table in tables.items():
        for ax, (x, y) in zip(axes, curves(table), strict=True):
            ax.plot(x, y, "o-", color=colours[chemistry], label=cell)
    for ax, (xlabel, ylabel) in zip(axes, labels, strict=True):
        ax.set(xlabel=xlabel, ylabel=ylabel)
    axes[0].legend(fontsize=8)
    _chemistry_legend(axes[1], {c: colours[c] for _, c in tables})
    return fig, axes


def sweeps(tables: Mapping[tuple[str, str], pd.DataFrame], colours: Mapping[str, str]) -> Figure:
    """Discharge capacity and retention vs chamber temperature, one line per (cell, chemistry)."""

    def curves(table: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
        table = table.sort_values("chamber_temperature")
        t = table["chamber_temperature"]
        return [(t, table["capacity"]), (t, 100 * table["retention"])]

    axis = "chamber temperature (°C)"
    labels = [(axis, "discharge capacity (Ah)"), (axis, "capacity relative to 25 °C (%)")]
    return _two_panels_per_cell("Capacity vs temperature (temperature sweeps)", tables, colours, curves, labels)[0]


def pulse_resistance(tables: Mapping[tuple[str, str], pd.DataFrame], colours: Mapping[str, str]) -> Figure:
    """Pulse resistance (mΩ) vs state of charge, discharge and regen pulses, one line per (cell, chemistry)."""

    def curves(table: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
        pulses = [table[table["direction"] == d].sort_values("soc") for d in ("discharge", "charge")]
        return [(100 * p["soc"], 1e3 * p["resistance"]) for p in pulses]

    axis = "state of charge (%)"
    labels = [(axis, "discharge pulse DCIR (mΩ)"), (axis, "regen pulse DCIR (mΩ)")]
    return _two_panels_per_cell("Pulse resistance vs state of charge (HPPC)", tables, colours, curves, labels)[0]


def rate_capability(tables: Mapping[tuple[str, str], pd.DataFrame], colours: Mapping[str, str]) -> Figure:
    """Discharge capacity and relative capacity vs C-rate, one line per (cell, chemistry)."""

    def curves(table: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
        table = table.sort_values("c_rate")
        return [(table["c_rate"], table["discharge_capacity"]), (table["c_rate"], 100 * table["relative_capacity"])]

    axis = "discharge rate (C)"
    labels = [(axis, "discharge capacity (Ah)"), (axis, "capacity relative to the lowest rate (%)")]
    fig, axes = _two_panels_per_cell("Rate capability", tables, colours, curves, labels)
    rates = sorted({round(r, 3) for t in tables.values() for r in t["c_rate"].dropna()})
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{r:g}C" for r in rates])
        ax.minorticks_off()
    return fig


def _about_zero(values: pd.Series, least: float, count: int) -> np.ndarray:
    """Bin edges symmetric about zero, reaching at least ``least`` and every value."""
    limit = max(least, values.abs().max())
    return np.linspace(-limit, limit, 2 * count + 1)


def consistency(cells: pd.DataFrame, tolerance: float) -> Figure:
    """Histograms of the initial capacity deviation from nominal (spec band ±``tolerance`` %, with the yield) and
    of the initial discharge energy and DCIR where known."""
    columns = [("capacity_deviation", "capacity − nominal (% of nominal)"), ("initial_energy", "discharge energy (Wh)")]
    if cells["initial_dcir"].notna().any():
        columns.append(("initial_dcir_mohm", "DCIR (mΩ)"))
    fig, axes = _panels(len(columns), "Cell-to-cell consistency at the first cycle")
    count = max(5, min(30, len(cells) // 2))
    for ax, (column, label) in zip(axes, columns, strict=True):
        values = cells[column].dropna()
        bins = _about_zero(values, 1.5 * tolerance, count) if column == "capacity_deviation" else count
        ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
        ax.set(xlabel=label, ylabel="cells")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    within = int((cells["capacity_deviation"].abs() <= tolerance).sum())
    spec = f"spec ±{tolerance:g} %: yield {within}/{len(cells)}"
    axes[0].axvspan(-tolerance, tolerance, color="green", alpha=0.12, label=spec)
    axes[0].legend(fontsize="small")
    return fig


def abuse_traces(title: str, traces: Mapping[str, tuple[np.ndarray, np.ndarray]], marks: Mapping[str, tuple]) -> Figure:
    """Temperature, voltage and force vs time of one abuse test, one panel each (those recorded).

    ``traces``: panel label → (time s, values); ``marks``: T1/T2/T3 → (time, temperature) or None,
    drawn on the temperature panel (the first); a dotted line marks the short on every panel.
    """
    fig, axes = _panels(len(traces), title)
    styles = {"T1": ("o", "#2ca02c"), "T2": ("s", "#ff7f0e"), "T3": ("^", "#d62728")}
    short = marks.get("short")
    for ax, (label, (t, values)) in zip(axes, traces.items(), strict=True):
        ax.plot(t, values, color="#333", lw=0.9)
        ax.set(xlabel="time (s)", ylabel=label)
        if short is not None:
            ax.axvline(short, color="grey", ls=":", lw=1)
    for name, (marker, colour) in styles.items():
        point = marks.get(name)
        if point is not None:
            axes[0].plot(*point, marker, color=colour, ms=8, mfc="none", mew=2, label=f"{name} {point[1]:.1f} °C")
    axes[0].legend(fontsize="small")
    return fig


def early_prediction(observed: pd.Series, predicted: pd.Series, censored: pd.Series | None = None) -> Figure:
    """Cross-validated predicted vs observed cycle life (cells as points, the 1:1 line), censored cells as ticks."""
    fig, (ax,) = _panels(1, "Early prediction of cycle life from the first 100 cycles")
    ax.plot(observed, predicted, "o", color="#4c72b0", label="cross-validated prediction")
    low = min(observed.min(), predicted.min())
    high = max(observed.max(), predicted.max())
    if censored is not None and len(censored):
        ax.plot(censored["last_cycle"], censored["predicted"], ">", color="#999", label="still running (predicted)")
        low, high = min(low, censored["last_cycle"].min()), max(high, censored["predicted"].max())
    ax.plot([low, high], [low, high], color="grey", ls="--", lw=0.8, label="1:1")
    ax.set(xlabel="observed cycle life (cycles)", ylabel="predicted cycle life (cycles)")
    ax.legend(fontsize="small")
    return fig
