"""Analysis of run files: cycle summaries now; life, ICA, DCIR, safety and dask campaigns to come."""

from .cycles import SUMMARY_UNITS, cycle_summary

__all__ = ["SUMMARY_UNITS", "cycle_summary"]
