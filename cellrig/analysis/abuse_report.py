"""One abuse test's report to its standard, the one a lab hands its customer (``cellrig test-report``).

Sample, clause, conditions, the instruments with serial, firmware and calibration, the traces with
T1/T2/T3 and the short marked, the operator's observations, the verdict criterion by criterion with
the evidence that decided it, and the run file's sha256.  HTML is self-contained (as the campaign
report).  PDF is drawn by matplotlib's PDF backend: the platform draws its figures with it already,
it needs no system libraries (WeasyPrint needs Pango and its fonts), and headed tables and one
figure need no more layout than it gives.  Its text is embedded as TrueType, so it can be searched
and copied.
"""

import hashlib
import html
import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from .. import __version__, observations
from ..storage import open_run
from . import plots
from .safety import SafetyResult, abuse_result, marks, passes

A4 = (8.27, 11.69)  # inches
MARGIN, LINE = 0.07, 0.0125  # of the page; a line of 8 pt text
WRAP = 110  # characters across the page at 8 pt


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    widths: tuple[float, ...]  # each column's share of the page width


@dataclass(frozen=True)
class AbuseReport:
    title: str
    verdict: str  # PASS, FAIL, provisional, report only
    tables: list[Table]
    figure: Figure
    caption: str
    sha256: str


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: chemistry name → (SOC, OCV) points of its open-circuit-voltage curve, for the SOC at the start
OcvTables = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def abuse_report(path: str | Path, ocv: OcvTables | None = None) -> AbuseReport:
    """Gather one abuse run's report from its file (ValueError if it has no temperature to judge);
    ``ocv``: the curves the state of charge at the start is read from, by the cell's chemistry."""
    run = open_run(path)
    info, result, traces = abuse_result(str(path))
    meta, protocol = run.meta, run.meta.get("protocol", {})
    criteria = info["criteria"]
    verdict = passes(criteria, result) if criteria else None
    cell = meta.get("cell", {})
    title = f"{protocol.get('title') or protocol.get('name', '')}: {cell.get('id', '?')}"
    tables = [
        Table("Sample", ("", ""), _sample(cell, result, ocv or {}), (0.3, 0.7)),
        Table("Standard and conditions", ("", ""), _conditions(run, protocol, criteria), (0.3, 0.7)),
        _instruments(meta),
        _calibration(meta),
        Table("Measurements", ("", ""), _measured(result, traces), (0.3, 0.7)),
        _observations(run),
        _verdict(verdict, result),
        Table("Record", ("", ""), _record(run, path), (0.3, 0.7)),
    ]
    caption = (
        ", ".join(traces) + " against time. T1 (self-heating onset, dT/dt ≥ 0.02 °C/min), T2 (thermal runaway, "
        "dT/dt ≥ 1 °C/s) and T3 (peak) marked; dotted: the short (the trigger's effect on the cell's voltage)."
    )
    figure = plots.abuse_traces(title, traces, marks(result))
    return AbuseReport(title, verdict.state if verdict else "no criteria", tables, figure, caption, sha256(path))


def _sample(cell: dict, result: SafetyResult, ocv: OcvTables) -> list[tuple[str, ...]]:
    rows = [
        ("cell id", str(cell.get("id", "?"))),
        ("type", str(cell.get("type", "—"))),
        ("chemistry", str(cell.get("chemistry", "—"))),
        ("rated capacity", f"{cell['capacity_ah']:g} Ah" if "capacity_ah" in cell else "—"),
        ("mass", f"{cell['mass_g']:g} g" if "mass_g" in cell else "—"),
    ]
    v0 = result.pretest_voltage
    rows.append(("voltage at the start", "not recorded" if v0 is None else f"{v0:.3f} V (measured, median of 10 s)"))
    chemistry = str(cell.get("chemistry", ""))
    if v0 is None or chemistry not in ocv:
        said = "not estimated (no voltage, or no OCV curve for this chemistry)"
    else:
        socs, volts = ocv[chemistry]
        said = f"≈ {100 * float(np.interp(v0, volts, socs)):.0f} % by the {chemistry} OCV curve, from that voltage"
    rows.append(("state of charge at the start", said))
    return rows


def _conditions(run, protocol: dict, criteria: dict | None) -> list[tuple[str, ...]]:
    meta = run.meta
    rows = [
        ("clause", criteria["clause"] if criteria else "none stated"),
        ("standard", str(protocol.get("standard", "—"))),
        ("protocol", f"{protocol.get('name', '?')} (sha256 {str(protocol.get('sha256', ''))[:16]}…)"),
    ]
    rows += [(f"parameter {k}", str(v)) for k, v in json.loads(protocol.get("parameters") or "{}").items()]
    if "temperature_degC" in protocol:
        rows.append(("chamber", f"{protocol['temperature_degC']:g} °C"))
    rows += [
        ("started (UTC)", str(meta.get("started", "?"))),
        ("lab", str(meta.get("lab", {}).get("name", "?"))),
        ("operator, host", f"{meta.get('operator', '?')}, {meta.get('host', '?')}"),
        ("ended", f"{run.status}: {run.end_reason or 'protocol complete'}"),
    ]
    return rows


def _instruments(meta: dict) -> Table:
    rows = [
        (
            role,
            i.get("kind", ""),
            " ".join(x for x in (i.get("manufacturer", ""), i.get("model", "")) if x) or i.get("identity", "—"),
            i.get("serial", "") or "—",
            i.get("firmware", "") or "—",
            i.get("resource", ""),
        )
        for role, i in meta.get("instruments", {}).items()
    ]
    header = ("role", "kind", "instrument", "serial", "firmware", "resource")
    return Table("Instruments", header, rows or [("not recorded",) + ("",) * 5], (0.1, 0.1, 0.3, 0.14, 0.14, 0.22))


def _calibration(meta: dict) -> Table:
    rows = [
        (what, c.get("certificate", "none"), c.get("date", ""), c.get("due", ""), c["state"], c.get("uncertainty", ""))
        for what, c in meta.get("calibration", {}).items()
    ]
    header = ("instrument", "certificate", "date", "due", "state that day", "uncertainty")
    return Table("Calibration", header, rows or [("not recorded",) + ("",) * 5], (0.24, 0.14, 0.1, 0.1, 0.12, 0.3))


def _measured(r: SafetyResult, traces: dict) -> list[tuple[str, ...]]:
    def at(value: float | None, when: float | None, unit: str = "°C") -> str:
        return "not reached" if value is None else f"{value:.1f} {unit}" + (f" at {when:.1f} s" if when else "")

    force = next((k[7:-1] for k in traces if k.startswith("force (")), "")
    rows = [
        ("T1 self-heating onset", at(r.t1, r.t1_time)),
        ("T2 thermal runaway", at(r.t2, r.t2_time)),
        ("T3 peak", at(r.t3, r.t3_time)),
        ("peak dT/dt", f"{r.max_rate:.2f} °C/s at {r.max_rate_time:.1f} s ({r.rate_method})"),
        ("short", "not seen" if r.short_time is None else f"at {r.short_time:.1f} s"),
        ("force at the short", "—" if r.force_at_short is None else f"{r.force_at_short:.3g} {force}"),
        ("peak gas", "—" if r.peak_gas is None else f"{r.peak_gas:.3g}"),
        ("recorded until", f"{r.end_time:.0f} s ({r.end_time / 3600:.2f} h)"),
        ("EUCAR hazard level", f"{r.eucar_level} ({r.eucar_evidence.get('rule')})"),
    ]
    return rows


def _observations(run) -> Table:
    events = run.events
    seen = events[events["kind"] == observations.EVENT]
    rows = []
    for _, e in seen.iterrows():
        o = observations.read(str(e["message"]))
        rows.append((f"{e['time']:.0f} s", str(o.get("operator", "")), observations.said(o)))
    if not rows:
        rows = [("—", "—", "none recorded: criteria judged by observation stay open (verdict provisional)")]
    header = ("lab time", "operator", "observed")
    return Table("Operator observations (the last counts)", header, rows, (0.12, 0.13, 0.75))


def _verdict(verdict, result: SafetyResult) -> Table:
    word = {True: "met", False: "NOT MET", None: "open"}
    rows = [(text, word[met], why) for text, met, why in verdict.criteria] if verdict else []
    rows.append(("verdict", verdict.state if verdict else "no criteria stated", f"EUCAR level {result.eucar_level}"))
    clause = verdict.standard if verdict else "no clause"
    return Table(f"Verdict: {clause}", ("criterion", "result", "evidence"), rows, (0.4, 0.12, 0.48))


def _record(run, path: str | Path) -> list[tuple[str, ...]]:
    return [
        ("run file", Path(path).name),
        ("run file sha256", sha256(path)),
        ("run id", str(run.attrs.get("run_id", ""))),
        ("written by", f"cellrig {run.attrs.get('cellrig_version', '?')}; this report by cellrig {__version__}"),
    ]


# -- HTML -------------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 900px; margin: 2em auto; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: .85em; width: 100%; } th, td { border: 1px solid #ccc;
padding: .25em .5em; text-align: left; vertical-align: top; } img { max-width: 100%; }
.verdict { font-size: 1.2em; font-weight: bold; } figcaption { font-size: .85em; color: #555; }
"""


def to_html(report: AbuseReport) -> str:
    parts = [f"<h1>Test report: {html.escape(report.title)}</h1>"]
    parts.append(f'<p class="verdict">Verdict: {html.escape(report.verdict)}</p>')
    for t in report.tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header) if any(t.header) else ""
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
        parts.append(
            f"<h2>{html.escape(t.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    parts.append(
        f'<h2>Traces</h2><figure><img alt="traces" src="{plots.data_uri(report.figure)}">'
        f"<figcaption>{html.escape(report.caption)}</figcaption></figure>"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


# -- PDF --------------------------------------------------------------------------------------------


class _Pages:
    """Text and tables down A4 pages, a new page when one is full."""

    def __init__(self, pdf: PdfPages, title: str) -> None:
        self.pdf, self.title, self.page, self.y = pdf, title, None, 0.0

    def _new(self) -> None:
        self.flush()
        self.page = Figure(figsize=A4)
        self.page.text(MARGIN, 1 - MARGIN / 2, self.title, fontsize=7, color="#666")
        self.y = 1 - MARGIN

    def flush(self) -> None:
        if self.page is not None:
            self.pdf.savefig(self.page)
            self.page = None

    def space(self, lines: int) -> None:
        if self.page is None or self.y - lines * LINE < MARGIN:
            self._new()

    def text(self, s: str, size: float = 8, weight: str = "normal") -> None:
        self.space(2)
        self.page.text(MARGIN, self.y, s, fontsize=size, weight=weight, va="top")
        self.y -= LINE * size / 8 * 1.5

    def table(self, t: Table) -> None:
        self.space(4)
        self.text(t.title, 10, "bold")
        width = 1 - 2 * MARGIN
        for i, row in enumerate([t.header, *t.rows] if any(t.header) else t.rows):
            cells = [textwrap.wrap(c, max(8, int(WRAP * w))) or [""] for c, w in zip(row, t.widths, strict=True)]
            height = max(len(c) for c in cells)
            self.space(height + 1)
            x = MARGIN
            for lines, w in zip(cells, t.widths, strict=True):
                weight = "bold" if i == 0 and any(t.header) else "normal"
                self.page.text(x, self.y, "\n".join(lines), fontsize=8, va="top", weight=weight, linespacing=1.25)
                x += w * width
            self.y -= height * LINE + LINE * 0.4
        self.y -= LINE


def to_pdf(report: AbuseReport, out: str | Path) -> None:
    with mpl.rc_context({"pdf.fonttype": 42}), PdfPages(out, metadata={"Title": report.title}) as pdf:
        pages = _Pages(pdf, f"cellrig test report · {report.title} · run file sha256 {report.sha256[:16]}…")
        pages.text(f"Test report: {report.title}", 13, "bold")
        pages.text(f"Verdict: {report.verdict}", 12, "bold")
        for t in report.tables:
            pages.table(t)
        pages.table(Table("Traces (the last page)", ("",), [(report.caption,)], (1.0,)))
        pages.flush()
        pdf.savefig(report.figure, bbox_inches="tight")


def write(path: str | Path, out: str | Path, ocv: OcvTables | None = None) -> Path:
    """Write the test report of run ``path`` to ``out``: ``.pdf`` or ``.html`` (``ocv``: :func:`abuse_report`)."""
    out = Path(out)
    if out.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise ValueError(f"{out}: a test report is written as .pdf or .html")
    report = abuse_report(path, ocv)
    if out.suffix.lower() == ".pdf":
        to_pdf(report, out)
    else:
        out.write_text(to_html(report), encoding="utf-8")
    return out
