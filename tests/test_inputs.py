"""Every file and name the user hands over: a bad one is refused in one clear line naming the file, with
exit 1, no traceback, nothing written, and in bounded time (pytest --durations shows each refusal's).

A corpus of malformed protocol, campaign, lab and import files goes through the ``cellrig`` command
(in-process, as click runs it); seeded hypothesis tests generate more of each kind.
"""

import gzip
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellrig.cli import main
from cellrig.inputs import MAX_TEXT_BYTES, InputError, check_name, path_in
from cellrig.lab import Lab, LabFileError
from cellrig.protocols import ProtocolError, parse
from cellrig.protocols.campaign import load_campaign
from cellrig.protocols.quantity import QuantityError
from cellrig.protocols.quantity import parse as quantity
from cellrig.storage.imports import SourceFileError, import_file

LAB = (Path(__file__).parents[1] / "examples" / "lab-virtual.toml").read_text()
STEP = "  - cccv: {current: 1C, voltage: 4.2 V, until_current: C/20, max_time: 3 h}\n"
# nine lists of nine aliases of the one before: 9**6 values once expanded (the "billion laughs")
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcde", "bcdef", strict=True)
)
SEASONED = "name: x\nsteps:\n  - rest: {}\n"
BDF = "Test Time / s,Voltage / V,Current / A\n" + "".join(f"{t},{3.5 + t / 1e4},1.0\n" for t in range(200))
CAMPAIGN = """\
name: c
lab: lab.toml
defaults: {protocol: capacity, cycler: cycler, daq: daq}
cells:
  - {id: NMC-01, type: nmc811-5Ah, channel: 101, probes: {temperature: 101}}
"""

#: Bad protocol files: name -> (text, what the error says).
PROTOCOLS = {
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
    "recursive-alias": ("name: x\nsteps: &a [*a]\n", ":2: steps[0]: an alias that holds itself"),
    "alias-bomb": (LAUGHS + "name: x\nsteps: [{rest: 1 h}]\n", "more than 100000 values once aliases are expanded"),
    "python-tag": (
        "name: x\nsteps:\n  - rest: !!python/object/apply:os.system [echo]\n",
        ":3: steps[0].rest: the tag tag:yaml.org,2002:python/object/apply:os.system is not allowed",
    ),
    "python-name": ("name: !!python/name:os.system\nsteps: [{rest: 1 h}]\n", ":1: name: the tag"),
    "pint-syntax": (SEASONED.format("1 h)("), ":3: steps[0].rest.duration: '1 h)(': unknown unit"),
    "power-of-power": (SEASONED.format("1 h^9^9^9"), "unknown unit 'h^9^9^9'"),
    "long-quantity": (SEASONED.format("1" * 80 + " h"), "is longer than 64 characters"),
    "infinite": (SEASONED.format("1e999 h"), "'1e999 h' is not a finite time"),
    "c-rate-over-zero": ("name: x\nsteps:\n  - cc: {current: C/0, max_time: 1 h}\n", "cannot divide by zero"),
    "until-for-0": (
        "name: x\nsteps:\n  - repeat:\n      times: 3\n      until: retention < 80 % for 0 cycles\n"
        "      steps: [{cc: {current: -1C, until_voltage: 3 V}}]\n",
        ":5: steps[0].repeat.until: 'for 0 …' must be at least 1 cycle",
    ),
    "nested-deep": ("name: x\nsteps: " + "[" * 60 + "]" * 60 + "\n", "nested more than 50 deep"),
    "nested-beyond-the-parser": ("name: x\nsteps: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML"),
    "too-large": ("name: x\nsteps:\n" + STEP * (MAX_TEXT_BYTES // len(STEP) + 1), "larger than 256 KiB"),
    "not-text": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", ":1: not UTF-8 text"),
    "name-is-a-path": ("name: ../x\nsteps: [{rest: 1 h}]\n", ":1: name: protocol name '../x' is not a name"),
    "impossible-date": ("name: x\ntitle: 2026-13-45\nsteps: [{rest: 1 h}]\n", ":2: title: cannot read '2026-13-45'"),
    "key-not-text": ("name: x\n? [a]\n: b\nsteps: [{rest: 1 h}]\n", ":1: protocol: a key must be plain text"),
}

#: Bad campaign files (beside a good lab.toml).
CAMPAIGNS = {
    "cell-id-is-a-path": (
        CAMPAIGN.replace("NMC-01", "../NMC-01"),
        ":5: cells[0].id: cell id '../NMC-01' is not a name",
    ),
    "alias-bomb": (LAUGHS + CAMPAIGN, "more than 100000 values"),
    "python-tag": ("name: !!python/object/new:os.system [x]\n" + CAMPAIGN[8:], "the tag"),
    "infinite-rating": (
        CAMPAIGN.replace("type: nmc811-5Ah", "type: nmc811-5Ah, rating: {v_max: .inf}"),
        "cell field v_max: expected a finite number, got inf",
    ),
    "until-for-0-in-a-cell-protocol": (
        CAMPAIGN.replace("protocol: capacity", "protocol: p.yaml"),
        "'for 0 …' must be at least 1 cycle",
    ),
    "no-lab-file": (CAMPAIGN.replace("lab.toml", "nowhere.toml"), "nowhere.toml: no such lab file"),
    "empty": ("", "the campaign file is empty"),
    "not-text": (b"name: c\n\xff\xfe\x00", ":2: not UTF-8 text"),
    "not-yaml": ("name: [c\n", "not valid YAML"),
}

#: Bad lab files.
LABS = {
    "speed-nan": (LAB.replace("speed = 4000.0", "speed = nan"), "clock: clock scale must be a finite positive number"),
    "speed-inf": (LAB.replace("speed = 4000.0", "speed = inf"), "clock: clock scale must be a finite positive number"),
    "origin-inf": (LAB.replace("speed = 4000.0", "speed = 4000.0\norigin = -inf"), "clock origin must be a finite"),
    "limit-nan": (LAB.replace("max_temperature = 200.0", "max_temperature = nan"), "expected a finite number"),
    "timeout-inf": (
        LAB.replace('name = "virtual', 'name = "virtual').replace(
            "options = { channel = 101 }", "options = { channel = 101 }\ntimeout_s = inf", 1
        ),
        "timeout_s: expected a positive",
    ),
    "nested-deep": ("a = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML (nested too deeply)"),
    "too-large": ("# " + "x" * MAX_TEXT_BYTES + "\n", "larger than 256 KiB"),
    "not-text": (b"\x00\x01\xff binary", ":1: not UTF-8 text"),
    "not-toml": ("roles = [1,\n", "not valid TOML"),
}


def _truncated_gzip(text: str) -> bytes:
    data = gzip.compress(text.encode())
    return data[: len(data) // 2]


#: Bad import files: name -> (file name, content, what the error says).
IMPORTS = {
    "not-gzip": ("cell.csv.gz", BDF.encode(), "not a readable gzip file"),
    "truncated-gzip": ("cell.csv.gz", _truncated_gzip(BDF), "not a readable gzip file"),
    "name-not-a-name": ("Cell 1.csv", BDF.encode(), "run name 'Cell 1' is not a name"),
    "infinite-value": ("cell.csv", BDF.replace("\n100,", "\n1e400,").encode(), "line 102: column 'time'"),
    "binary": ("cell.csv", bytes(range(256)) * 4, "unknown format"),
    "cut-row": ("cell.csv", BDF[: BDF.rindex(",")].encode(), "line 201: 2 fields where the header has 3"),
}


def _corpus() -> dict[str, tuple[str, str, str | bytes, str]]:
    """Every bad file: case -> (kind, file name, content, what the error says)."""
    cases = {f"protocol/{k}": ("protocol", f"{k}.yaml", t, said) for k, (t, said) in PROTOCOLS.items()}
    cases |= {f"campaign/{k}": ("campaign", "campaign.yaml", t, said) for k, (t, said) in CAMPAIGNS.items()}
    cases |= {f"lab/{k}": ("lab", "lab.toml", t, said) for k, (t, said) in LABS.items()}
    cases |= {f"import/{k}": ("import", name, data, said) for k, (name, data, said) in IMPORTS.items()}
    return cases


CORPUS = _corpus()


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def refused(args: list[str], out: Path, said: str, file: Path | None = None) -> str:
    """``cellrig ARGS`` exits 1 with one error naming ``file`` and saying ``said``; no traceback, nothing in ``out``."""
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught exception
    assert result.exit_code == 1, result.output
    assert said in result.stderr and (file is None or str(file) in result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())
    return result.stderr


def test_the_corpus_holds_at_least_40_bad_files_of_every_kind():
    kinds = [kind for kind, *_ in CORPUS.values()]
    assert len(kinds) >= 40 and set(kinds) == {"protocol", "campaign", "lab", "import"}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_each_bad_file_is_refused_in_one_line_with_exit_1_and_nothing_written(tmp_path, case):
    kind, name, content, said = CORPUS[case]
    out = tmp_path / "out"
    bad = _write(tmp_path / name, content)
    if kind == "protocol":
        args = ["run", str(bad), "--out", str(out), "--speed", "1000"]
    elif kind == "campaign":
        _write(tmp_path / "lab.toml", LAB)
        _write(tmp_path / "p.yaml", PROTOCOLS["until-for-0"][0])
        args = ["campaign", str(bad), "--out", str(out)]
    elif kind == "lab":
        args = ["run", "capacity", "--lab", str(bad), "--out", str(out)]
    else:
        args = ["import", str(bad), "--out", str(out)]
    refused(args, out, said, tmp_path / "nowhere.toml" if case == "campaign/no-lab-file" else bad)


def test_a_cell_id_that_is_a_path_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "runs"
    said = refused(["run", "capacity", "--cell-id", "../escaped", "--out", str(out)], out, "cell id '../escaped'")
    assert said.count("\n") == 1
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("*.h5"))


def test_an_excel_export_without_the_optional_reader_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if the imports extra were not installed
    book = tmp_path / "cell.xlsx"
    with zipfile.ZipFile(book, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    refused(
        ["import", str(book), "--out", str(tmp_path / "out")], tmp_path / "out", "pip install 'cellrig[imports]'", book
    )


# -- generated inputs ------------------------------------------------------------------------------

GENERATED = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOOD_PROTOCOL = (
    "name: p\nparameters:\n  rate: {default: 1C}\nsteps:\n  - repeat:\n      times: 2\n"
    "      until: retention < 80 % for 2 cycles\n      steps:\n"
    "        - cccv: {current: $rate, voltage: $v_max, until_current: C/20, max_time: 3 h}\n"
    "        - rest: 10 min\n        - cc: {current: -$rate, until_voltage: $v_min, max_time: 3 h}\n"
)
YAML_BITS = st.sampled_from(
    [
        "&a ",
        "*a",
        "!!python/name:os.system ",
        "!!binary ",
        "<<: ",
        "? ",
        "- ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\n",
        "  ",
        "'",
        '"',
        "#",
        "$",
        "C/0",
        "1e999 ",
        "nan",
        "for 0 cycles",
        "h^9^9",
        "\x00",
        "\t",
        "2026-13-45",
        "\\",
        "µ",
    ]
)


@st.composite
def damaged(draw, text: str, bits=YAML_BITS) -> str:
    """``text`` with a few pieces cut out and a few (YAML syntax, odd values) put in."""
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at] + draw(st.one_of(bits, st.text(max_size=8))) + text[at:]
    return text


def _one_line_each(problems: list[str], origin: str) -> None:
    assert problems and all(p.startswith(origin) and "\n" not in p for p in problems), problems


@GENERATED
@given(damaged(GOOD_PROTOCOL))
def test_a_damaged_protocol_compiles_or_is_refused_with_its_file_in_every_line(text):
    try:
        parse(text, "gen.yaml")
    except ProtocolError as exc:
        _one_line_each(exc.problems, "gen.yaml")


@GENERATED
@given(damaged(CAMPAIGN))
def test_a_damaged_campaign_loads_or_is_refused_with_its_file_in_every_line(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("campaign")
    _write(folder / "lab.toml", LAB)
    path = _write(folder / "campaign.yaml", text)
    try:
        load_campaign(path)
    except ProtocolError as exc:
        _one_line_each(exc.problems, str(path))
    except LabFileError as exc:  # the campaign named another lab file
        assert str(exc).startswith(str(folder))


TOML_BITS = st.sampled_from(
    ["nan", "inf", "-inf", "[", "]", "{", "}", "=", '"', "\n", "[[roles]]", "1e999", "\x00", "true"]
)


@GENERATED
@given(damaged(LAB, TOML_BITS))
def test_a_damaged_lab_file_reads_or_is_refused_naming_it(tmp_path_factory, text):
    path = _write(tmp_path_factory.mktemp("lab") / "lab.toml", text)
    try:
        lab = Lab.from_file(path)
    except LabFileError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert all(0 < spec.policy.timeout_s < float("inf") for spec in lab.roles.values())


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    st.sampled_from([".csv", ".csv.gz"]),
    st.integers(0, len(BDF) - 1),
    st.lists(st.tuples(st.integers(0, len(BDF) - 1), st.binary(min_size=1, max_size=4)), max_size=4),
)
def test_a_damaged_export_imports_or_is_refused_naming_it_and_leaves_nothing(tmp_path_factory, suffix, cut, flips):
    data = bytearray(BDF.encode())
    for at, bits in flips:
        data[at : at + len(bits)] = bits
    data = gzip.compress(bytes(data))[: cut + 20] if suffix == ".gz" else bytes(data[: cut + 1])
    folder = tmp_path_factory.mktemp("import")
    path = _write(folder / f"cell{suffix}", data)
    out = folder / "out"
    try:
        run = import_file(path, out)
    except SourceFileError as exc:
        assert str(exc).startswith(str(path)) and not out.exists()
    else:
        assert run.parent == out


@GENERATED
@given(st.text(max_size=120))
def test_a_name_is_refused_or_names_a_file_directly_in_the_folder(tmp_path_factory, name):
    folder = tmp_path_factory.getbasetemp()
    try:
        path = path_in(folder, name, ".h5", "name")
    except InputError as exc:
        assert repr(name) in str(exc)
    else:
        assert check_name(name, "name") == name and path.resolve().parent == folder.resolve()


@GENERATED
@given(st.one_of(st.text(max_size=40), st.text(alphabet="0123456789.eE-+ Vh/*^()C%°", max_size=20)))
def test_a_quantity_is_a_finite_number_or_refused(text):
    try:
        value = quantity(text, "time", capacity_ah=5.0)
    except QuantityError:
        return
    assert value == value and abs(value) < float("inf")
