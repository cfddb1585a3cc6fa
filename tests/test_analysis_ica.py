"""dQ/dV and dV/dQ with peak tracking, against the synthetic cell's known OCV peaks."""

import numpy as np
import pytest
import xarray as xr

from cellrig.analysis.ica import ICAOptions, dqdv, dvdq, track_peaks
from cellrig.analysis.synthetic import FadeCurve, SyntheticCell, write_run

CELL = SyntheticCell(cycles=60, samples=1000, fade=FadeCurve(knee=30, eol=55), seed=11)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ica") / "cell.h5"
    return path, write_run(path, CELL)


@pytest.mark.parametrize("direction", ["discharge", "charge"])
def test_peaks_sit_at_the_ocv_peaks_shifted_by_the_ohmic_drop(run, direction):
    path, synthetic = run
    curve = dqdv(path, ICAOptions(direction=direction))
    peaks = track_peaks(curve)
    assert peaks.sizes["peak"] == len(CELL.ocv.peaks)
    drop = CELL.capacity * synthetic.truth["resistance"].to_numpy()  # 1C × R, growing as the cell ages
    sign = 1 if direction == "charge" else -1
    for k, (centre, _, _) in enumerate(CELL.ocv.peaks):
        error = peaks["position"].to_numpy()[:, k] - (centre + sign * drop)
        assert abs(np.median(error)) < 0.004 and np.abs(error).max() < 0.015, (k, error)
    shift = peaks["position"].isel(cycle=-1) - peaks["position"].isel(cycle=0)
    np.testing.assert_allclose(shift, sign * (drop[-1] - drop[0]), atol=0.01)  # the peaks follow R's growth


def test_peak_heights_shrink_with_the_capacity(run):
    path, synthetic = run
    peaks = track_peaks(dqdv(path))
    cap = synthetic.truth["discharge_capacity"].to_numpy()
    ratio = peaks["height"].isel(cycle=-1) / peaks["height"].isel(cycle=0)
    np.testing.assert_allclose(ratio, cap[-1] / cap[0], rtol=0.03)


def test_area_under_dqdv_is_the_cc_capacity_and_parameters_are_recorded(run):
    path, synthetic = run
    options = ICAOptions(voltage_step=0.001, fwhm=0.02)
    curve = dqdv(path, options)
    area = np.nansum(curve.to_numpy(), axis=1) * options.voltage_step
    pulse = CELL.pulse_rate * CELL.capacity * CELL.pulse_s / 3600
    cc_discharge = synthetic.truth["discharge_capacity"] - pulse
    np.testing.assert_allclose(area, cc_discharge, rtol=0.01)
    assert curve.attrs["fwhm"] == 0.02 and curve.attrs["voltage_step"] == 0.001 and curve.attrs["units"] == "Ah/V"
    assert curve["cycle"].to_numpy().tolist() == list(range(1, CELL.cycles + 1))
    assert np.all(np.diff(curve["voltage"].to_numpy()) > 0)


def test_dvdq_integrates_to_the_voltage_swing(run):
    path, _ = run
    curve = dvdq(path, ICAOptions(capacity_fwhm=0))
    step = float(curve["capacity"][1] - curve["capacity"][0])
    swing = np.nansum(curve.isel(cycle=0).to_numpy()) * step
    assert swing == pytest.approx(CELL.ocv.v_max - CELL.ocv.v_min, abs=0.1)  # the discharge spans the OCV window
    assert curve.attrs["units"] == "V/Ah" and curve.attrs["capacity_fwhm"] == 0


def test_peaks_can_be_followed_from_given_positions():
    x = np.linspace(3.0, 4.0, 501)
    centres = np.array([3.40, 3.42, 3.44])
    values = np.exp(-(((x[None, :] - centres[:, None]) / 0.02) ** 2)) * np.array([[1.0], [0.9], [0.8]])
    curve = xr.DataArray(values, coords={"cycle": [1, 2, 3], "voltage": x}, dims=("cycle", "voltage"))
    peaks = track_peaks(curve, near=[3.41], window=0.05)
    np.testing.assert_allclose(peaks["position"].sel(peak=0), centres, atol=1e-4)
    np.testing.assert_allclose(peaks["height"].sel(peak=0), [1.0, 0.9, 0.8], rtol=1e-3)
    assert np.isnan(track_peaks(curve, near=[4.5], window=0.1)["position"]).all()  # no point within the window


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="direction"):
        ICAOptions(direction="both")
    with pytest.raises(ValueError, match="positive"):
        ICAOptions(voltage_step=0)
