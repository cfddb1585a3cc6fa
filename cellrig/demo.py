"""The demo: a sulfide all-solid-state cell's claims tested on the virtual lab — would it pass, how long will it live?

Three chemistries side by side (sulfide all-solid-state, NMC811 and LFP, 5 Ah each):
cycle life with RPTs at 25 °C and 45 °C until 80 % retention or 36 cycles (cells aged 60× faster
than rated: the NMC811 cells reach end of life within the demo, the 25 °C LFP and sulfide cells, like
their published counterparts, live far longer and are still going when it stops), a temperature
sweep from -20 to 85 °C, HPPC, then abuse tests on fresh cells — a 200 °C hot box, GB/T 31485 nail penetration and
GB 38031 crush.  Each phase runs on a virtual lab served in its own process, through the
same engine, drivers and run files as a real lab; the campaign is then analysed with dask
into ``report.html``.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .lab import Lab
from .protocols import campaign as campaigns
from .protocols import library
from .protocols.campaign import Campaign, ChamberEntry, Plan
from .protocols.cells import PRESET_TYPES, cell_spec
from .protocols.engine import Runner
from .protocols.preflight import Binding
from .protocols.states import resumable
from .protocols.stopping import StopRequest
from .sim.process import served_lab
from .sim.wiring import CYCLER_CHANNELS, RIG, chamber_of, cycler, cycler_cell, oven
from .storage import open_run

MARK = "demo.json"  # what tells `cellrig resume` that a folder is a demo's
AGEING = 60.0  # the demo's cells age this many times faster than rated (time and throughput alike)
LIFE_CYCLES = 36  # at most: the NMC811 cells reach end of life, the 25 °C LFP and sulfide cells are still going
LABELS = {"nmc811": "NMC", "lfp": "LFP", "sulfide": "SUL"}
LIFE_TEMPERATURES = {"chamber": "25 °C", "chamber2": "45 °C"}  # the cycle-life runs' by the chamber they are in


@dataclass
class Phase:
    """One part of the demo: a folder, a virtual lab and the cells run on it together."""

    folder: str
    title: str
    lab: dict[str, Any]
    cells: list[tuple[str, str, str, dict[str, Any], Binding]]  # id, cell type, protocol, parameters, binding
    chambers: dict[str, ChamberEntry] = field(default_factory=dict)


def _id(channel: int, suffix: str = "") -> tuple[str, str]:
    preset = cycler_cell(channel)
    return f"{LABELS[preset]}-{channel - 100:02d}{suffix}", PRESET_TYPES[preset]


def phases() -> list[Phase]:
    life = []
    for channel in CYCLER_CHANNELS:
        cell_id, cell_type = _id(channel)
        temperature = LIFE_TEMPERATURES[chamber_of(channel)]
        params = {"temperature": temperature, "rpt_every": 10, "rest": "10 min", "max_cycles": LIFE_CYCLES}
        life.append((cell_id, cell_type, "cycle-life", params, cycler(channel)))
    sweep = [
        (*_id(104, "t"), "temperature-sweep", {"soak": "30 min"}, cycler(104)),
        (*_id(105, "t"), "temperature-sweep", {"soak": "30 min", "t5": "55 °C", "t6": "60 °C"}, cycler(105)),
        (*_id(106, "t"), "temperature-sweep", {"soak": "30 min", "t5": "55 °C", "t6": "60 °C"}, cycler(106)),
    ]
    hppc = [(*_id(ch, "h"), "hppc", {"rest": "30 min"}, cycler(ch, chamber=False)) for ch in (101, 103, 104)]
    hot = {"target": "200 °C"}  # GB 38031's hold and observation, at the sulfide cell's claimed 200 °C
    out = [
        Phase(
            "life", "cycle life to 80 % with RPTs, 25 °C and 45 °C", {"speed": 4000, "dt": 2, "ageing": AGEING}, life
        ),
        Phase("sweep", "temperature sweep -20…85 °C", {"speed": 4000, "dt": 2}, sweep),
        Phase("hppc", "HPPC (DCIR vs SOC)", {"speed": 4000, "dt": 2}, hppc),
    ]
    # one oven each: a cell running away makes its oven safe, which would end the other's test
    for ch in (101, 104):
        name = LABELS[cycler_cell(ch)]
        cell = (*_id(ch, "b"), "hot-box", hot, oven(ch))
        out.append(Phase(f"hot-box-{name.lower()}", f"200 °C hot box on {name}", {"speed": 2000}, [cell]))
    for test in ("nail-gbt31485", "crush-gb38031"):
        for preset in ("nmc811", "sulfide"):
            cell = (f"{LABELS[preset]}-{test.split('-')[0]}", PRESET_TYPES[preset], test, {}, RIG)  # as the standard
            lab = {"speed": 200, "specimen": preset}
            out.append(Phase(f"{test}-{preset}", f"{test} on {LABELS[preset]}", lab, [cell]))
    return out


Execute = Callable[[list[Runner]], None]


def run_demo(
    out: Path,
    execute: Execute,
    announce: Callable[[str], None] = print,
    stop: StopRequest | None = None,
    *,
    resume: bool = False,
    plan: list[Phase] | None = None,
) -> list[Path]:
    """Run every phase into ``out/<phase>/``; ``execute`` runs a phase's runners (the CLI shows progress).

    Once ``stop`` is set (a signal) the phase running ends safely and no other starts.  ``resume``:
    go on with a demo that was interrupted — phases that ended are kept, interrupted runs continue
    in their files (their cells put back as their last checkpoint left them), a phase cut short
    (:func:`_phase_state`) runs again on fresh cells in ``<phase>-again/``, the rest start.
    ``plan``: other phases than the demo's (:func:`phases`).
    """
    stop = stop or StopRequest()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).write_text(json.dumps({"demo": __version__}))
    folders = []
    for phase in plan or phases():
        if stop.is_set():
            break
        folder = out / phase.folder
        state = _phase_state(folder, len(phase.cells)) if resume else "new"
        if state == "cut short":
            folder = out / f"{phase.folder}-again"
            state = _phase_state(folder, len(phase.cells))
        if state != "ended":
            announce(f"{phase.folder}: {phase.title}" + (" (continued)" if state == "resumable" else ""))
            with served_lab(out / f".{phase.folder}-lab.toml", **phase.lab) as lab_file, Lab.from_file(lab_file) as lab:
                if state == "resumable":
                    runners = campaigns.resume(folder, lab, interrupt=stop)
                else:
                    plans = [
                        Plan(library.protocol(protocol, cell_spec(cell_type, cell_id), params), binding)
                        for cell_id, cell_type, protocol, params, binding in phase.cells
                    ]
                    runners = campaigns.start(
                        Campaign(phase.folder, lab, plans, phase.chambers), folder, interrupt=stop
                    )
                execute(runners)
        folders.append(folder)
    return folders


def _phase_state(folder: Path, cells: int) -> str:
    """new (nothing there), ended, resumable (a run to continue), or cut short: an abuse run that did not end
    (abuse runs never resume), or the phase stopped while creating its files (fewer than its ``cells``)."""
    runs = [open_run(p) for p in sorted(folder.glob("*.h5"))] if folder.is_dir() else []
    if not runs:
        return "new"
    if len(runs) < cells:
        return "cut short"
    unfinished = [r for r in runs if r.status in resumable(False)]
    if not unfinished:
        return "ended"
    return "cut short" if any(r.meta["protocol"]["kind"] == "abuse" for r in unfinished) else "resumable"
