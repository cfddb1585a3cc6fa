"""The protocol language: quantities, parameters, loops; and bad files refused with file, line and reason."""

import pytest

from cellrig.protocols import ProtocolError, cell_spec, library, parse
from cellrig.protocols.program import Check, Leaf
from cellrig.protocols.quantity import QuantityError
from cellrig.protocols.quantity import parse as quantity

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


def test_a_good_file_parses():
    assert parse(GOOD).leaves[0].spec.voltage == 4.2


def test_every_problem_of_a_file_is_reported_at_once():
    text = "name: x\nsteps:\n  - cccv: {current: 1C}\n  - rest: 10\n  - chargee: {}\n"
    with pytest.raises(ProtocolError) as caught:
        parse(text, "multi.yaml")
    assert [p.split(": ")[0] for p in caught.value.problems] == ["multi.yaml:3", "multi.yaml:4", "multi.yaml:5"]
