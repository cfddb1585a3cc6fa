"""Analysis of run files: step tables, per-cycle summaries, life metrics, dQ/dV, campaigns over dask.

``cycles`` and ``steps`` load with the package; ``life`` and ``ica`` (scipy) and ``parallel``
(dask) load on first use of their names, so ``cellrig summary`` starts fast.  ``synthetic``
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
    "ICAOptions": "ica",
    "dqdv": "ica",
    "dvdq": "ica",
    "track_peaks": "ica",
    "CampaignAnalysis": "parallel",
    "analyse_campaign": "parallel",
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
    "ICAOptions",
    "LifeMetrics",
    "StepDetection",
    "analyse_campaign",
    "cycle_summary",
    "dqdv",
    "dvdq",
    "life_metrics",
    "retention",
    "step_table",
    "to_bdf",
    "track_peaks",
]
