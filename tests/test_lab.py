"""lab.toml: every bad entry refused with file, key and reason before anything opens; lab check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellrig.clock import ManualClock
from cellrig.lab import Lab, LabFileError
from cellrig.sim import BT2200, NMC811, Cell, SimServer

CELLRIG = Path(sys.executable).with_name("cellrig")


def lab_text(resource: str, **extra: str) -> str:
    lines = [
        'name = "bench 3"',
        "[roles.cycler]",
        'driver = "keysight_bt2200"',
        f'resource = "{resource}"',
        "options = { channel = 101 }",
        "limits = { min_voltage = 2.5, max_voltage = 4.2, max_current = 5.0 }",
    ]
    return "\n".join(lines + [f"{k} = {v}" for k, v in extra.items()]) + "\n"


def test_a_good_lab_file_reads_without_opening_anything(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(lab_text("TCPIP0::10.0.0.5::5025::SOCKET"))  # nothing listens there: never contacted
    lab = Lab.from_file(path)
    spec = lab.roles["cycler"]
    assert (lab.name, spec.driver, spec.options, spec.safe_state) == (
        "bench 3",
        "keysight_bt2200",
        {"channel": 101},
        "open-circuit",
    )
    assert spec.limits == {"min_voltage": 2.5, "max_voltage": 4.2, "max_current": 5.0}
    assert lab.instruments == {}


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        (
            lab_text("TCPIP0::1.2.3.4::5025::SOCKET").replace("keysight_bt2200", "bt9000"),
            ["roles.cycler.driver: unknown driver 'bt9000'"],
        ),
        (lab_text("TCPIP0:1.2.3.4:5025"), ["roles.cycler.resource: 'TCPIP0:1.2.3.4:5025' is not a VISA resource name"]),
        (
            lab_text("TCPIP0::1.2.3.4::5025::SOCKET")
            .replace("max_current = 5.0", "max_current = 10.0")
            .replace("channel = 101", "chanel = 101"),
            [
                "roles.cycler.limits.max_current: 10.0 is above the Keysight BT2200 rating of 6.25",
                "roles.cycler.options.chanel: unknown option",
            ],
        ),
        (
            lab_text("TCPIP0::1.2.3.4::5025::SOCKET", safe_state='"on"', colour='"red"'),
            ["roles.cycler.safe_state: 'on' is not one of open-circuit", "roles.cycler.colour: unknown key"],
        ),
        ('name = "x"\n', ["roles: no [roles.<name>] entries"]),
        ("roles = [1,\n", ["not valid TOML"]),
    ],
)
def test_bad_entries_are_all_reported_with_file_and_key(tmp_path, text, messages):
    path = tmp_path / "lab.toml"
    path.write_text(text)
    with pytest.raises(LabFileError) as info:
        Lab.from_file(path)
    text = str(info.value)
    assert text.startswith(str(path))
    for message in messages:
        assert message in text


def served_bt2200(idn: str | None = None) -> SimServer:
    sim = BT2200(ManualClock(), {101: Cell(NMC811, 5.0, soc=0.5)})
    if idn:
        sim.idn = idn
    return SimServer(sim).start()


def test_lab_check_against_the_virtual_instrument(tmp_path):
    server = served_bt2200()
    try:
        path = tmp_path / "lab.toml"
        path.write_text(lab_text(server.resource))
        command = [str(CELLRIG), "lab", "check", "--verbose", str(path)]
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BT2202A" in out.stdout and "SIM0000001" in out.stdout and "ok" in out.stdout
    assert "keysight_bt2200 commands" in out.stdout  # --verbose: the driver's command table
    assert "STAT:CELL:REP? (@<cell>)" in out.stdout and "unverified" in out.stdout


def test_lab_check_says_which_instrument_is_the_wrong_model(tmp_path):
    server = served_bt2200("Keysight Technologies,B2902A,MY123,2.0")
    dead = "TCPIP0::127.0.0.1::9::SOCKET"  # discard port: nothing listens
    try:
        path = tmp_path / "lab.toml"
        path.write_text(
            lab_text(server.resource)
            + lab_text(dead).split("\n", 1)[1].replace("[roles.cycler]", "[roles.spare]")
            + "timeout_s = 0.5\nretries = 0\n"
        )
        lab = Lab.from_file(path)
        with lab:
            rows = {row.role: row for row in lab.check()}
        wide = {**os.environ, "COLUMNS": "200"}
        out = subprocess.run(
            [str(CELLRIG), "lab", "check", str(path)], capture_output=True, text=True, timeout=120, env=wide
        )
    finally:
        server.stop()
    assert out.returncode == 1 and "model mismatch" in out.stdout and "unreachable" in out.stdout
    assert rows["cycler"].status.startswith("model mismatch: the lab file says Keysight BT2200")
    assert "'B2902A'" in rows["cycler"].status
    assert rows["spare"].status.startswith("unreachable")


def test_cellrig_sim_serves_the_virtual_lab_and_lab_check_passes_against_it(tmp_path):
    lab_file = tmp_path / "virtual.toml"
    server = subprocess.Popen(
        [str(CELLRIG), "sim", "--write-lab", str(lab_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in server.stdout:  # the server says when it is up
            if line.startswith("serving"):
                break
        check = subprocess.run(
            [str(CELLRIG), "lab", "check", str(lab_file)], capture_output=True, text=True, timeout=120
        )
    finally:
        server.send_signal(subprocess.signal.SIGINT)
        server.wait(timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    for role in Lab.from_file(lab_file).roles:
        assert role in check.stdout
    assert server.returncode == 0


def test_faults_planned_in_the_virtual_lab_show_up_at_lab_check(tmp_path):
    lab_file = tmp_path / "virtual.toml"
    server = subprocess.Popen(
        [str(CELLRIG), "sim", "--write-lab", str(lab_file), "--fault", "cycler:garble:9:*IDN"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in server.stdout:
            if line.startswith("serving"):
                break
        check = subprocess.run(
            [str(CELLRIG), "lab", "check", str(lab_file)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "250"},  # one table row per line
        )
    finally:
        server.send_signal(subprocess.signal.SIGINT)
        server.wait(timeout=30)
    assert check.returncode == 1
    assert "model mismatch" in check.stdout and "BT????A" in check.stdout
