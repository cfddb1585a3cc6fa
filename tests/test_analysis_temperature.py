"""Capacity and energy vs chamber temperature from a run that steps the chamber through −20…85 °C.

The run is written here with the RunWriter in the run-file layout only (streams ``cycler``,
``chamber``, ``daq``), not by the run engine: at each set point the chamber ramps and soaks while
the cell is charged and rests, then the cell is discharged at 1C for a temperature-dependent time.
"""

import numpy as np
import pandas as pd
import pytest

from cellrig.analysis.temperature import capacity_vs_temperature
from cellrig.storage import Column, RunWriter

SET_POINTS = (-20.0, 0.0, 25.0, 45.0, 60.0, 85.0)
CAPACITY = 2.0  # Ah nominal
CURRENT = 2.0  # A, 1C
ROWS = 200  # per phase


def _available(temperature: float) -> float:
    """Discharge capacity (Ah) at a temperature: low when cold, a little less when hot."""
    return CAPACITY * (0.97 - 0.004 * abs(temperature - 30.0) - 0.0001 * max(0.0, 10.0 - temperature) ** 2)


def _run_columns(seed: int = 0) -> tuple[dict[str, dict[str, np.ndarray]], pd.DataFrame]:
    """Cycler, chamber and DAQ columns of the protocol, and per set point the true capacity and energy."""
    rng = np.random.default_rng(seed)
    cycler = {k: [] for k in ("time", "voltage", "current", "step", "cycle")}
    chamber_t, chamber_temp, truth, now, air = [], [], [], 0.0, 25.0
    for cycle, set_point in enumerate(SET_POINTS, start=1):
        q = _available(set_point)
        phases = (  # step, current, duration, voltage
            (1, CURRENT, 3600.0 * q / CURRENT, np.linspace(3.6, 4.2, ROWS)),  # charge (chamber ramps)
            (2, 0.0, 7200.0, np.full(ROWS, 4.15)),  # soak at the set point
            (3, -CURRENT, 3600.0 * q / CURRENT, np.linspace(4.0, 3.0, ROWS) - 0.002 * (25.0 - set_point)),
        )
        for step, current, duration, voltage in phases:
            dt = duration / ROWS
            times = now + dt * np.arange(1, ROWS + 1)
            volts = voltage + 1e-4 * rng.standard_normal(ROWS)
            cycler["time"].append(times)
            cycler["voltage"].append(volts)
            cycler["current"].append(np.full(ROWS, current))
            cycler["step"].append(np.full(ROWS, step, dtype=np.int32))
            cycler["cycle"].append(np.full(ROWS, cycle, dtype=np.int32))
            readings = np.arange(now + 10.0, now + duration + 1e-9, 10.0)  # the chamber logs every 10 s
            target = np.where(
                readings < now + duration / 2, air + (set_point - air) * (readings - now) / (duration / 2), set_point
            )
            if step > 1:
                target = np.full(len(readings), set_point)
            chamber_t.append(readings)
            chamber_temp.append(target + 0.05 * rng.standard_normal(len(readings)))
            if step == 3:
                truth.append(
                    (set_point, -current * dt * len(times) / 3600.0, float(np.sum(CURRENT * volts * dt)) / 3600.0)
                )
            now += duration
        air = set_point
    columns = {
        "cycler": {k: np.concatenate(v) for k, v in cycler.items()},
        "chamber": {"time": np.concatenate(chamber_t), "temperature": np.concatenate(chamber_temp)},
    }
    columns["daq"] = {
        "time": columns["chamber"]["time"],
        "temperature": columns["chamber"]["temperature"] + 1.5,  # the cell runs a little warm
    }
    return columns, pd.DataFrame(truth, columns=["set_point", "capacity", "energy"])


@pytest.fixture(scope="module")
def stepped_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("temperature") / "sweep.h5"
    columns, truth = _run_columns()
    streams = {
        "cycler": {
            "voltage": Column("V"),
            "current": Column("A"),
            "step": Column("", "i4"),
            "cycle": Column("", "i4"),
        },
        "chamber": {"temperature": Column("degC")},
        "daq": {"temperature": Column("degC")},
    }
    meta = {"cell": {"id": "T-SWEEP", "nominal_capacity_Ah": CAPACITY}, "protocol": {"name": "temperature sweep"}}
    with RunWriter.create(path, streams, meta, cycle_stream="cycler", fsync=False) as w:
        for name, cols in columns.items():
            w.append(name, **cols)
    return path, truth


def test_one_discharge_per_set_point_with_its_chamber_temperature_capacity_and_energy(stepped_run):
    path, truth = stepped_run
    table = capacity_vs_temperature(path)
    assert table["cycle"].tolist() == list(range(1, len(SET_POINTS) + 1)) and set(table["step"]) == {3}
    np.testing.assert_allclose(table["chamber_temperature"], truth["set_point"], atol=0.05)
    assert (table["chamber_temperature_max"] - table["chamber_temperature_min"] < 0.5).all()  # soaked: no ramp
    np.testing.assert_allclose(table["cell_temperature"], truth["set_point"] + 1.5, atol=0.05)
    np.testing.assert_allclose(table["capacity"], truth["capacity"], rtol=1e-9)
    np.testing.assert_allclose(table["energy"], truth["energy"], rtol=1e-9)
    np.testing.assert_allclose(table["retention"], truth["capacity"] / truth["capacity"].iloc[2], rtol=1e-9)
    assert table["capacity"].idxmin() == 0 and table.attrs["units"]["energy"] == "Wh"
    assert table.attrs["chamber_source"] == "streams/chamber/temperature"


def test_without_a_chamber_stream_the_error_says_so(tmp_path):
    path = tmp_path / "plain.h5"
    with RunWriter.create(path, {"cycler": {"voltage": Column("V"), "current": Column("A")}}) as w:
        w.append("cycler", time=np.arange(3.0), voltage=np.full(3, 3.7), current=np.zeros(3))
    with pytest.raises(ValueError, match="no 'chamber' stream"):
        capacity_vs_temperature(path)
