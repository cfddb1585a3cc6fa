"""Calibration on record: read from the lab file, shown by ``lab check``, kept in every run file, and a
certification test refused on an instrument out of calibration before anything moves."""

import datetime as dt
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellrig.calibration import Certificate, read_calibration
from cellrig.lab import Lab, LabFileError
from cellrig.protocols import Binding, Probe, cell_spec, library
from cellrig.protocols.engine import PreflightError, Runner, Shared
from cellrig.sim.lab import VirtualLab
from cellrig.storage import open_run

CELLRIG = Path(sys.executable).with_name("cellrig")
TODAY = dt.date.today()
RIG = Binding(rig="rig", daq="daq2", probes={"temperature": Probe(101)})


def certificate(name: str, due_in_days: int) -> dict:
    return {
        "certificate": name,
        "date": TODAY - dt.timedelta(days=365),
        "due": TODAY + dt.timedelta(days=due_in_days),
        "uncertainty": "±0.5 K",
    }


def test_a_certificate_is_valid_due_soon_or_expired_by_its_due_date():
    cert = Certificate("C-1", dt.date(2026, 1, 5), dt.date(2027, 1, 5), "±0.1 %")
    assert cert.state(dt.date(2026, 12, 5)) == "valid"
    assert cert.state(dt.date(2026, 12, 6)) == "due soon"  # 30 days ahead
    assert cert.state(dt.date(2027, 1, 5)) == "due soon"  # the due day itself is still in calibration
    assert cert.state(dt.date(2027, 1, 6)) == "expired"
    assert cert.says(dt.date(2027, 2, 1)) == "expired: C-1, since 2027-01-05"


def test_the_lab_files_calibration_tables_are_checked_key_by_key():
    problems: list[str] = []
    given = certificate("DAQ-7", 200) | {"channels": {"101": certificate("TC-101", 10), "x": {}}}
    calibration = read_calibration("roles.daq.calibration", given, problems)
    assert problems == ["roles.daq.calibration.channels.x: a channel is a number, e.g. 101"]
    assert calibration.of(101).certificate == "TC-101" and calibration.of(102).certificate == "DAQ-7"
    bad = {"certificate": "", "date": "2026-01-01", "due": dt.date(2020, 1, 1), "colour": 1}
    problems = []
    read_calibration("roles.daq.calibration", bad, problems)
    assert problems == [
        "roles.daq.calibration.colour: unknown key (known: certificate, date, due, uncertainty, channels)",
        "roles.daq.calibration.uncertainty: missing (a certificate needs certificate, date, due, uncertainty)",
        "roles.daq.calibration.certificate: expected text, got ''",
        "roles.daq.calibration.date: expected a date such as 2026-03-02, got '2026-01-01'",
    ]
    backwards = certificate("X", 10) | {"due": TODAY - dt.timedelta(days=400)}
    with pytest.raises(LabFileError, match=r"roles.daq.calibration.due: .* is not after the calibration date"):
        Lab.from_dict(
            {"roles": {"daq": {"driver": "keysight_daq970a", "resource": "ASRL1::INSTR", "calibration": backwards}}}
        )


@pytest.fixture
def lab_with(request):
    """The virtual lab, its lab file's calibration of ``role`` replaced."""

    def build(role: str, calibration: dict):
        virtual = VirtualLab(speed=2_000, dt=2.0).__enter__()
        request.addfinalizer(lambda: virtual.__exit__(None, None, None))
        data = virtual.lab_dict()
        data["roles"][role]["calibration"] = calibration
        lab = Lab.from_dict(data, "lab.toml", virtual.clock)
        request.addfinalizer(lab.close)
        return virtual, lab

    return build


def test_a_certification_test_on_an_expired_instrument_is_refused_naming_it_before_anything_moves(tmp_path, lab_with):
    virtual, lab = lab_with("daq2", certificate("KS-6510-0413", -3) | {"channels": {"102": certificate("TC", 100)}})
    nail = library.protocol("nail-gbt31485", cell_spec("nmc811-5Ah"))
    assert nail.header.certification
    with pytest.raises(PreflightError) as caught:
        Runner.start(nail, RIG, tmp_path, Shared(lab))
    expired = (TODAY - dt.timedelta(days=3)).isoformat()
    assert any(
        "nail-gbt31485.yaml: daq2 channel 101 (temperature): calibration expired: KS-6510-0413, since " + expired in p
        and "a certification test needs every instrument it uses in calibration" in p
        for p in caught.value.problems
    ), caught.value.problems
    assert lab.instruments == {} and list(tmp_path.iterdir()) == []  # nothing opened, no run file
    assert virtual.sims["rig"].x == 0.0  # read back from the simulator: the ram never left home


def test_a_run_records_its_instruments_calibration_and_warns_of_one_due_soon(tmp_path, lab_with, caplog):
    _virtual, lab = lab_with("daq2", certificate("KS-6510-0413", 12))
    protocol = library.protocol("capacity", cell_spec("nmc811-5Ah"))
    binding = Binding(cycler="cycler", channel=101, daq="daq2", probes={"temperature": Probe(104)})
    with caplog.at_level(logging.WARNING):
        runner = Runner.start(protocol, binding, tmp_path, Shared(lab))
    runner.writer.close("stopped", "only its meta was wanted")
    record = open_run(runner.writer.path).meta["calibration"]
    assert record["daq2 channel 104 (temperature)"]["state"] == "due soon"
    assert record["daq2 channel 104 (temperature)"]["certificate"] == "KS-6510-0413"
    assert record["cycler"]["certificate"] == "virtual-cycler" and record["cycler"]["state"] == "valid"
    assert "daq2 channel 104 (temperature): calibration due soon (KS-6510-0413" in caplog.text


def test_lab_check_shows_each_certificate_and_its_state(tmp_path, lab_with):
    virtual, _lab = lab_with("daq", {})
    lapsed = TODAY - dt.timedelta(days=1)
    mine = f'calibration = {{ certificate = "DAQ-1", date = {lapsed.replace(year=lapsed.year - 1)}, due = {lapsed}, '
    lines = [
        mine + 'uncertainty = "±0.5 K" }' if '"virtual-daq"' in line else line
        for line in virtual.lab_toml().splitlines()
    ]
    path = tmp_path / "lab.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    wide = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run(
        [str(CELLRIG), "lab", "check", str(path)], capture_output=True, text=True, timeout=120, env=wide
    )
    assert out.returncode == 0, out.stderr
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.count("│") > 2}
    assert f"expired: DAQ-1, since {lapsed}" in rows["daq"]  # a lapsed certificate does not stop a check
    assert f"valid: virtual-rig, due {TODAY + dt.timedelta(days=365)}" in rows["rig"]
