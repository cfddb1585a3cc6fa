"""Long tests first (with the suite split between workers, a long test started last would run alone); the
safety fault matrix printed at the end."""

import json
import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the safety fault matrix the session's cases wrote (tests/test_safety_matrix.py)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cellrig-safety-matrix-{os.getpid()}.jsonl"
    if not path.exists():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    terminalreporter.section("safety fault matrix (state read back from the simulators)")
    for row in sorted(rows, key=lambda r: (r["phase"], r["fault"])):
        safe = ", ".join(f"{k} {'safe' if v is True else v}" for k, v in row["safe"].items()) or "lab gone"
        case = f"{row['phase']:<22} {row['fault']:<22} rc {row['rc']:<3} {row['status']:<8}"
        terminalreporter.write_line(f"{case} {safe:<28} {row['reason'][:90]}")
