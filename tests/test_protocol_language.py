"""The protocol language: quantities, parameters, loops; and bad files refused with file, line and reason."""

import subprocess
import sys
from pathlib import Path

import pytest

from cellrig.protocols import ProtocolError, cell_spec, library, parse
from cellrig.protocols.language import Check, Leaf
from cellrig.protocols.quantity import QuantityError
from cellrig.protocols.quantity import parse as quantity

CELLRIG = Path(sys.executable).with_name("cellrig")
NMC = cell_spec("nmc811-5Ah")


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("4.2 V", "voltage", 4.2),
        ("1C", "current", 5.0),
        ("C/20", "current", 0.25),
        ("-0.5C", "current", -2.5),
        ("500 mA", "current", 0.5),
        ("10 min", "time", 600.0),
        ("1.5 h", "time", 5400.0),
        ("-20 °C", "temperature", -20.0),
        ("85 degC", "temperature", 85.0),
        ("5 K/min", "heating rate", 5.0),
        ("25 mm/s", "speed", 25.0),
        ("100 kN", "force", 100.0),
        ("80 %", "fraction", 0.8),
        ("1.1 × 4.2 V", "voltage", 4.62),
        ("5 mΩ", "resistance", 0.005),
    ],
)
def test_quantities_carry_units_and_become_engine_units(text, kind, value):
    assert quantity(text, kind, capacity_ah=5.0) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "kind", "said"),
    [
        ("4.2", "voltage", "is not a voltage with a unit"),
        ("4.2 A", "voltage", "is not a voltage"),
        ("10 parsecs", "time", "is not a time"),
        ("10 blorbs", "time", "unknown unit"),
        ("25 °C", "temperature difference", "written in K"),
    ],
)
def test_a_value_without_the_right_unit_is_refused(text, kind, said):
    with pytest.raises(QuantityError, match=said):
        quantity(text, kind)


def test_parameters_default_override_and_reach_loops_and_conditions():
    text = """
name: p
parameters:
  rate: {default: 1C}
  n: {default: 3}
  eol: {default: 80 %}
steps:
  - repeat:
      times: $n
      until: retention < $eol
      steps:
        - cccv: {current: $rate, voltage: $v_max, until_current: C/20}
        - cc: {current: -$rate, until_voltage: $v_min}
"""
    p = parse(text, "<p>", NMC, {"rate": "0.5C", "eol": "70 %"})
    charge, discharge = (i for i in p.program if isinstance(i, Leaf))
    assert (charge.spec.current, charge.spec.voltage, discharge.spec.current) == (2.5, 4.2, -2.5)
    (check,) = (i for i in p.program if isinstance(i, Check))
    assert check.times == 3 and check.until[:2] == ("retention", "<") and check.until[2] == pytest.approx(0.7)
    assert p.parameters == {"rate": "0.5C", "n": 3, "eol": "70 %"}


def test_every_library_protocol_compiles_for_every_virtual_cell_and_names_its_standard():
    for name in library.names():
        header = library.header(name)
        assert header.standard and header.title, name
        for cell in ("nmc811-5Ah", "lfp-5Ah", "sulfide-5Ah"):
            assert library.protocol(name, cell_spec(cell)).leaves


GOOD = "name: ok\nsteps:\n  - cccv: {current: 1C, voltage: 4.2 V, until_current: C/20, max_time: 3 h}\n"

#: Bad protocol files: (text, what the error must say).  Each is refused before any instrument is opened.
CORPUS = {
    "missing-field": (
        "name: x\nsteps:\n  - cccv: {current: 1C, until_current: C/20}\n",
        ":3: steps[0].cccv.voltage: missing",
    ),
    "wrong-units": ("name: x\nsteps:\n  - cccv: {current: 1C, voltage: 4.2 A}\n", "'4.2 A' is not a voltage"),
    "no-units": ("name: x\nsteps:\n  - rest: 600\n", ":3: steps[0].rest.duration: 600 has no unit"),
    "bad-yaml": ("name: x\nsteps:\n  - cccv: {current: 1C, voltage: 4.2 V\n", "not valid YAML"),
    "unknown-kind": ("name: x\nsteps:\n  - chargee: {current: 1C}\n", ":3: steps[0].chargee: unknown step kind"),
    "unknown-key": ("name: x\nsteps:\n  - cccv: {current: 1C, volts: 4.2 V}\n", ":3: steps[0].cccv.volts: unknown key"),
    "unknown-top-key": ("name: x\ncycles: 3\nsteps:\n  - rest: 1 h\n", ":2: cycles: unknown key"),
    "unknown-parameter": ("name: x\nsteps:\n  - cc: {current: $ratee, max_time: 1 h}\n", "unknown parameter $ratee"),
    "no-subprotocol": ("name: x\nsteps:\n  - call: rpt\n", ":3: steps[0].call.protocol: no subprotocol 'rpt'"),
    "bad-until": (
        "name: x\nsteps:\n  - repeat:\n      times: 3\n      until: capacity fades\n      steps: [{rest: 1 h}]\n",
        ":5: steps[0].repeat.until: expected 'retention < 80 %'",
    ),
    "press-without-stop": ("name: x\nsteps:\n  - press: {mode: nail, speed: 25 mm/s}\n", "needs at least one stop"),
    "negative-time": (
        "name: x\nsteps:\n  - rest: -5 min\n",
        ":3: steps[0].rest.duration: Input should be greater than 0",
    ),
    "empty": ("", "the protocol file is empty"),
    "not-a-mapping": ("- rest: 1 h\n", "expected a mapping of keys"),
    "beyond-cell-rating": (
        "name: x\nsteps:\n  - cccv: {current: 1C, voltage: 4.5 V, until_current: C/20}\n",
        ":3: step 1 (cccv): 4.5 V is outside the cycler's 2.5–4.2 V",
    ),
    "beyond-chamber": (
        "name: x\nsteps:\n  - set: 210 °C\n  - rest: 1 h\n",
        ":3: step 1 (set): 210 °C is outside the chamber",
    ),
}


def test_a_good_file_parses():
    assert parse(GOOD).leaves[0].spec.voltage == 4.2


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_each_bad_protocol_is_refused_with_file_line_and_reason_and_leaves_no_run_file(tmp_path, case):
    text, said = CORPUS[case]
    bad = tmp_path / f"{case}.yaml"
    bad.write_text(text)
    out = subprocess.run(
        [str(CELLRIG), "run", str(bad), "--out", str(tmp_path / "runs"), "--speed", "1000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stdout
    assert said in out.stderr and str(bad) in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_every_problem_of_a_file_is_reported_at_once():
    text = "name: x\nsteps:\n  - cccv: {current: 1C}\n  - rest: 10\n  - chargee: {}\n"
    with pytest.raises(ProtocolError) as caught:
        parse(text, "multi.yaml")
    assert [p.split(": ")[0] for p in caught.value.problems] == ["multi.yaml:3", "multi.yaml:4", "multi.yaml:5"]
