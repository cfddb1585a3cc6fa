"""The run file's layout: names, column declarations, exit statuses, metadata coding."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

SCHEMA = "cellrig-run/1"
STREAMS = "streams"
EVENTS = "events"
META = "meta"
CYCLE_INDEX = "index/cycles"
TIME = "time"
CHUNK_ROWS = 16384  # ~128 KiB per float64 column: fast appends, cheap SWMR flushes

#: How a run can end; the last ``end`` event carries one of these.
EXIT_STATUSES = ("finished", "stopped", "aborted", "tripped", "failed")

EVENT_COLUMNS = ("time", "kind", "step", "cycle", "message")
EVENT_KIND_BYTES = 32
EVENT_MESSAGE_BYTES = 2048


def held_rows(datasets: Mapping[str, h5py.Dataset]) -> int:
    """Rows every one of a table's columns holds (a crash between two columns' writes may leave one longer)."""
    return min(d.shape[0] for d in datasets.values())


def fit_text(text: str, size: int) -> bytes:
    """UTF-8 bytes of ``text`` cut (on a character boundary, marked …) to fit ``size`` bytes."""
    data = text.encode()
    if len(data) <= size:
        return data
    return data[: size - 3].decode(errors="ignore").encode() + "…".encode()


_DTYPE_KINDS = {"f": "fiub", "i": "iub", "u": "ub", "b": "b"}


@dataclass(frozen=True)
class Column:
    """A typed column of a stream: its units and numpy dtype (float64 unless said)."""

    units: str
    dtype: str = "f8"
    description: str = ""

    def __post_init__(self) -> None:
        kind = np.dtype(self.dtype).kind
        if kind not in _DTYPE_KINDS:
            raise ValueError(f"column dtype {self.dtype!r} is not numeric or bool")

    @property
    def accepts(self) -> str:
        """The numpy dtype kinds whose values this column takes without loss."""
        return _DTYPE_KINDS[np.dtype(self.dtype).kind]


def write_meta(group: h5py.Group, meta: Mapping[str, Any]) -> None:
    """Store a nested dict: dicts become groups, everything else an attribute."""
    for key, value in meta.items():
        if isinstance(value, Mapping):
            write_meta(group.create_group(key), value)
        elif value is None:
            group.attrs[key] = "null"
            group.attrs.create(f"{key}.json", True)
        elif isinstance(value, str | int | float | bool | np.number):
            group.attrs[key] = value
        else:
            group.attrs[key] = json.dumps(value)
            group.attrs.create(f"{key}.json", True)


def read_attrs(obj: h5py.HLObject, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """An object's attributes (or only those of ``keys`` it has: each attribute read costs) as plain
    Python values, JSON-coded ones decoded."""
    order = list(obj.attrs)
    names = set(order)
    out: dict[str, Any] = {}
    for key in (k for k in keys if k in names) if keys is not None else order:
        if key.endswith(".json"):
            continue
        value = obj.attrs[key]
        if isinstance(value, bytes):
            value = value.decode()
        if f"{key}.json" in names:
            value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def read_meta(group: h5py.Group) -> dict[str, Any]:
    """The inverse of :func:`write_meta`."""
    return read_attrs(group) | {key: read_meta(sub) for key, sub in group.items()}
