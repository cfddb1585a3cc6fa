"""Analysis of run files: step tables, per-cycle summaries, life metrics, dQ/dV, campaigns over dask.

``cycles`` and ``steps`` load with the package; ``life``, ``ica``, ``safety`` (scipy),
``parallel`` (dask) and ``early`` (scikit-learn) load on first use of their names, so
``cellrig summary`` starts fast.  ``early``: Severson-style cycle-life prediction from the first
100 cycles; ``safety``: T1/T2/T3, dT/dt, collapse, EUCAR level and pass/fail of abuse tests;
``temperature``: capacity and energy vs chamber temperature within one run; ``characterisation``:
pulse resistance (DCIR) vs SOC, rate capability and specific energy.  ``synthetic``
writes runs with known ground truth for tests and benchmarks.
"""

import importlib
from typing import Any

from .cycles import BDF_NAMES, SUMMARY_COLUMNS, SUMMARY_UNITS, cycle_summary, to_bdf
from .steps import STEP_UNITS, StepDetection, step_table

_LAZY = {
    "LifeMetrics": "life",
    "life_metrics": "life",
    "retention": "life",
    "at_main_rate": "life",
    "ICAOptions": "ica",
    "dqdv": "ica",
    "dvdq": "ica",
    "track_peaks": "ica",
    "CampaignAnalysis": "parallel",
    "analyse_campaign": "parallel",
    "CycleLifeModel": "early",
    "TooFewCyclesError": "early",
    "delta_q": "early",
    "early_features": "early",
    "features_from_columns": "early",
    "fit_cycle_life": "early",
    "run_features": "early",
    "safety_metrics": "safety",
    "safety_from_run": "safety",
    "eucar_level": "safety",
    "passes": "safety",
    "SafetyResult": "safety",
    "SafetyOptions": "safety",
    "Verdict": "safety",
    "capacity_vs_temperature": "temperature",
    "pulse_resistance": "characterisation",
    "rate_capability": "characterisation",
    "specific_energy": "characterisation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BDF_NAMES",
    "STEP_UNITS",
    "SUMMARY_COLUMNS",
    "SUMMARY_UNITS",
    "CampaignAnalysis",
    "CycleLifeModel",
    "ICAOptions",
    "LifeMetrics",
    "SafetyOptions",
    "SafetyResult",
    "StepDetection",
    "TooFewCyclesError",
    "Verdict",
    "analyse_campaign",
    "at_main_rate",
    "capacity_vs_temperature",
    "cycle_summary",
    "delta_q",
    "dqdv",
    "dvdq",
    "early_features",
    "eucar_level",
    "features_from_columns",
    "fit_cycle_life",
    "life_metrics",
    "passes",
    "pulse_resistance",
    "rate_capability",
    "retention",
    "run_features",
    "safety_from_run",
    "safety_metrics",
    "specific_energy",
    "step_table",
    "to_bdf",
    "track_peaks",
]
