"""The protocol language: YAML validated into typed steps, compiled into a program the engine runs.

A protocol file::

    name: cycle-life
    title: Cycle life with periodic RPT
    standard: "practice: CC-CV to C/20 (EVE LF304 datasheet), see docs/standards.md §8"
    kind: cycling                       # cycling | characterisation | abuse (abuse runs never resume)
    parameters:
      rate: {default: 1C, help: charge and discharge rate}
    limits: {temperature_max: 60 °C}    # the safety supervisor's limits
    subprotocols:
      rpt: [{cccv: {current: C/3, voltage: $v_max, until_current: C/20}}, {rest: 1 h}]
    steps:
      - set: 25 °C
      - call: rpt
      - repeat:
          times: 3000
          until: retention < 80 %
          rpt: {every: 50, call: rpt}
          steps:
            - cccv: {current: $rate, voltage: $v_max, until_current: C/20, max_time: 3 h}
            - rest: 10 min
            - cc: {current: -$rate, until_voltage: $v_min, max_time: 3 h}

Values carry units ("4.2 V", "10 min", "1C"; current positive charging); ``$name`` takes a
parameter or a value of the cell (``$v_min``, ``$v_max``, ``$t_min``, ``$t_max``,
``$capacity``, ``$mass``).  Every error names the file, line, field and reason; unknown
keys are errors.  A file is read within bounds (:func:`read_yaml`): at most
:data:`~cellrig.inputs.MAX_TEXT_BYTES`, :data:`MAX_YAML_VALUES` values once aliases are expanded,
nested at most :data:`MAX_YAML_DEPTH` deep, and no tags beyond YAML's plain types.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError

from ..inputs import InputError, check_name, read_text
from . import quantity
from .cells import CellSpec
from .criteria import Criteria
from .kinds import KINDS
from .program import Check, Count, Enter, Instruction, Leaf
from .schema import Limits, Model, Seconds

Loc = tuple[str | int, ...]


class ProtocolError(ValueError):
    """A protocol that cannot run: every problem with its file, line, field and reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _named(what: str) -> Any:
    return AfterValidator(lambda name: check_name(name, what))


ProtocolName = Annotated[str, _named("protocol name")]
CellId = Annotated[str, _named("cell id")]


# -- control flow ---------------------------------------------------------------------------


class Call(Model):
    protocol: str


class RptEvery(Model):
    every: int = Field(gt=0)
    call: str


class Repeat(Model):
    times: int = Field(gt=0)
    until: str | None = None
    rpt: RptEvery | None = None
    steps: list[Any]


class Parallel(Model):
    steps: list[Any]


#: The control-flow kinds the compiler unrolls (the step kinds are :data:`.kinds.KINDS`): model, short field.
CONTROL: dict[str, tuple[type[Model], str | None]] = {
    "call": (Call, "protocol"),
    "repeat": (Repeat, None),
    "parallel": (Parallel, "steps"),
}


class Parameter(Model):
    default: str | int | float
    help: str = ""


class Header(Model):
    """A protocol's description: everything but its steps."""

    name: ProtocolName
    title: str = ""
    standard: str = ""
    criteria: Criteria | None = None  # what an abuse run passes by (.criteria)
    kind: Literal["cycling", "characterisation", "abuse"] = "cycling"
    verify: bool = False  # built on values docs/standards.md marks unverified
    certification: bool = False  # a test to a standard's clauses: refused on an instrument out of calibration
    description: str = ""
    sample_interval: Seconds = 10.0  # between DAQ scans (abuse tests: ≥ 1 Hz, docs/standards.md §9)
    observe_after_trip: Seconds | None = None  # recording after a trip (default: see engine.observation)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    subprotocols: dict[str, list[Any]] = Field(default_factory=dict)
    steps: list[Any] = Field(min_length=1)


# -- reading YAML with its line numbers ---------------------------------------------------

MAX_YAML_VALUES = 100_000  # values in a protocol or campaign file, every alias expanded
MAX_YAML_DEPTH = 50  # mappings and lists within each other
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("null", "bool", "int", "float", "str", "timestamp")}
_TEXT_TAGS = {_YAML + "merge", _YAML + "value"}  # "<<" and "=": plain text here
_COLLECTION_TAGS = {_YAML + "map", _YAML + "seq"}


def read_yaml(text: str, origin: str) -> tuple[Any, "_Source"]:
    """YAML ``text`` as plain values (None if empty) and where each is; :class:`ProtocolError` if out of bounds."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = mark.line + 1 if mark else text[: getattr(exc, "position", 0)].count("\n") + 1
        reason = " ".join(str(getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc).split())
        raise ProtocolError([f"{origin}:{at}: not valid YAML ({reason})"]) from None
    except RecursionError:  # the pure-Python parser, where libyaml is missing
        raise ProtocolError([f"{origin}: not valid YAML (nested too deeply)"]) from None
    src = _Source(origin, {})
    return (None if node is None else _Plain(src).value(node, (), 0)), src


class _Plain:
    """Plain Python values from YAML nodes, each value's line noted; aliases expanded within the bounds."""

    def __init__(self, src: "_Source") -> None:
        self.src, self.count, self.open = src, 0, set[int]()
        self.constructor = yaml.constructor.SafeConstructor()

    def refuse(self, node: yaml.Node, loc: Loc, reason: str) -> ProtocolError:
        return ProtocolError([f"{self.src.origin}:{node.start_mark.line + 1}: {_dotted(loc)}: {reason}"])

    def value(self, node: yaml.Node, loc: Loc, depth: int) -> Any:
        self.src.lines[loc] = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_YAML_VALUES:
            raise self.refuse(node, loc, f"more than {MAX_YAML_VALUES} values once aliases are expanded")
        if depth > MAX_YAML_DEPTH:
            raise self.refuse(node, loc, f"nested more than {MAX_YAML_DEPTH} deep")
        if id(node) in self.open:
            raise self.refuse(node, loc, "an alias that holds itself")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if node.tag not in _COLLECTION_TAGS:
            self.src.problem(loc, f"the tag {node.tag} is not allowed")
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(n, (*loc, i), depth + 1) for i, n in enumerate(node.value)]
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.src.problem(loc, "a key must be plain text")
                    continue
                key = str(key_node.value)
                if key in out:
                    where = f"{self.src.origin}:{key_node.start_mark.line + 1}"
                    self.src.problems.append(f"{where}: {_dotted((*loc, key))}: given twice")
                out[key] = self.value(value_node, (*loc, key), depth + 1)
            return out
        finally:
            self.open.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag in _TEXT_TAGS:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self.src.problem(loc, f"the tag {node.tag} is not allowed")
            return None
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # e.g. a date such as 2026-13-45
            self.src.problem(loc, f"cannot read {node.value!r} ({exc})")
            return None


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "protocol"


@dataclass
class _Source:
    origin: str
    lines: dict[Loc, int]
    problems: list[str] = field(default_factory=list)

    def line(self, loc: Loc) -> int:
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)

    def problem(self, loc: Loc, reason: str) -> None:
        self.problems.append(f"{self.origin}:{self.line(loc)}: {_dotted(loc)}: {reason}")

    def validation(self, exc: ValidationError, at: Loc, known: Callable[[Loc], str] | None = None) -> None:
        for err in exc.errors():
            loc = at + tuple(err["loc"])
            kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
            if kind == "extra_forbidden":
                msg = "unknown key" + (f" (known: {known(loc)})" if known else "")
            elif kind == "missing":
                msg = "missing"
            self.problem(loc, msg)


# -- parameters ---------------------------------------------------------------------------

_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _substitute(value: Any, params: dict[str, Any], loc: Loc, src: _Source) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, params, (*loc, k), src) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, (*loc, i), src) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    if (m := _REF.fullmatch(value)) and m[1] in params:
        return params[m[1]]

    def replace(m: re.Match[str]) -> str:
        if m[1] not in params:
            src.problem(loc, f"unknown parameter ${m[1]} (known: {', '.join('$' + p for p in params)})")
            return m[0]
        return str(params[m[1]])

    text = _REF.sub(replace, value)
    return re.sub(r"^-\s*-", "", text) if text.startswith("-") else text  # "-$rate" with rate "-1C"


# -- the compiled program -------------------------------------------------------------------


_UNTIL = re.compile(r"\s*(retention|capacity)\s*(<=|>=|<|>)\s*(.+?)(?:\s+for\s+(\d+)\s+(?:cycles|iterations))?\s*")


@dataclass(frozen=True)
class Protocol:
    """A protocol ready to run on one cell: parameters resolved, quantities in engine units."""

    header: Header
    program: tuple[Instruction, ...]
    limits: Limits
    parameters: dict[str, Any]
    cell: CellSpec
    source: str
    origin: str

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def abuse(self) -> bool:
        return self.header.kind == "abuse"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def leaves(self) -> list[Leaf]:
        return [i for i in self.program if isinstance(i, Leaf)]

    def roles(self) -> set[str]:
        """The lab roles the protocol drives."""
        roles = set()
        for leaf in self.leaves:
            for part in leaf.parts:
                if part.role:
                    roles.add(part.role)
        return roles


def _kinds() -> str:
    return ", ".join([*KINDS, *CONTROL])


class _Compiler:
    def __init__(self, header: Header, src: _Source, params: dict[str, Any], cell: CellSpec) -> None:
        self.header, self.src, self.params, self.cell = header, src, params, cell
        self.program: list[Instruction] = []
        self.loops = 0
        self.calls: list[str] = []

    def context(self) -> dict[str, Any]:
        return {"capacity_ah": self.cell.capacity_ah}

    def steps(self, steps: Any, loc: Loc, label: str, rpt: bool) -> None:
        if not isinstance(steps, list) or not steps:
            self.src.problem(loc, "expected a non-empty list of steps")
            return
        for i, step in enumerate(steps):
            self.step(step, (*loc, i), label, rpt)

    def parse_step(self, step: Any, loc: Loc) -> tuple[str, Any, Loc] | None:
        if not isinstance(step, dict) or len(step) != 1:
            self.src.problem(loc, f"a step is one 'kind: settings' pair (kinds: {_kinds()})")
            return None
        kind, args = next(iter(step.items()))
        if kind not in KINDS and kind not in CONTROL:
            self.src.problem((*loc, kind), f"unknown step kind (kinds: {_kinds()})")
            return None
        model, short = (KINDS[kind].model, KINDS[kind].short) if kind in KINDS else CONTROL[kind]
        if short and not isinstance(args, dict):
            args = {short: args}
        if not isinstance(args, dict):
            self.src.problem((*loc, kind), "expected a mapping of settings")
            return None
        args = _substitute(args, self.params, (*loc, kind), self.src)
        try:
            spec = model.model_validate(args, context=self.context())
        except ValidationError as exc:
            self.src.validation(exc, (*loc, kind), lambda _: ", ".join(model.model_fields))
            return None
        return kind, spec, (*loc, kind)

    def step(self, step: Any, loc: Loc, label: str, rpt: bool) -> None:
        parsed = self.parse_step(step, loc)
        if parsed is None:
            return
        kind, spec, at = parsed
        name = f"{label}/{kind}" if label else kind
        if kind == "call":
            self.call(spec.protocol, (*at, "protocol"), rpt)
        elif kind == "repeat":
            self.repeat(spec, at, name, rpt)
        elif kind == "parallel":
            self.parallel(spec, at, name, rpt)
        else:
            number = len(self.leaves()) + 1
            self.program.append(Leaf(number, name, kind, spec, KINDS[kind].role, rpt, self.src.line(at)))

    def leaves(self) -> list[Leaf]:
        return [i for i in self.program if isinstance(i, Leaf)]

    def call(self, name: str, loc: Loc, rpt: bool) -> None:
        subs = self.header.subprotocols
        if name not in subs:
            self.src.problem(loc, f"no subprotocol {name!r} (defined: {', '.join(subs) or 'none'})")
        elif name in self.calls:
            self.src.problem(loc, f"subprotocol {name!r} calls itself")
        else:
            self.calls.append(name)
            self.steps(subs[name], ("subprotocols", name), name, rpt)
            self.calls.pop()

    def repeat(self, spec: Repeat, loc: Loc, label: str, rpt: bool) -> None:
        until, confirm = None, 1
        if spec.until is not None:
            m = _UNTIL.fullmatch(spec.until)
            if not m:
                expected = "expected 'retention < 80 %' or 'capacity < 4 Ah' (<, <=, >, >=), optionally 'for 5 cycles'"
                self.src.problem((*loc, "until"), expected)
            else:
                kind = "fraction" if m[1] == "retention" else "charge"
                try:
                    until = (m[1], m[2], quantity.parse(m[3], kind))
                    confirm = int(m[4] or 1)
                except quantity.QuantityError as exc:
                    self.src.problem((*loc, "until"), str(exc))
                if confirm < 1:
                    self.src.problem((*loc, "until"), f"'for {m[4]} …' must be at least 1 cycle")
        loop = self.loops = self.loops + 1
        self.program.append(Enter(loop))
        body = len(self.program)
        first_leaf = len(self.leaves())
        self.steps(spec.steps, (*loc, "steps"), label, rpt)
        if until and not any(part.spec.discharges() for leaf in self.leaves()[first_leaf:] for part in leaf.parts):
            self.src.problem((*loc, "until"), f"'{spec.until}' needs a discharge step in the loop")
        count = len(self.program)
        self.program.append(Count(loop, spec.rpt.every if spec.rpt else None, -1))
        if spec.rpt:
            self.call(spec.rpt.call, (*loc, "rpt", "call"), True)
        self.program[count] = Count(loop, spec.rpt.every if spec.rpt else None, len(self.program))
        self.program.append(Check(loop, spec.times, until, body, confirm))

    def parallel(self, spec: Parallel, loc: Loc, label: str, rpt: bool) -> None:
        parts = []
        for i, step in enumerate(spec.steps):
            parsed = self.parse_step(step, (*loc, "steps", i))
            if parsed is None:
                continue
            kind, sub, at = parsed
            if kind in ("call", "repeat", "parallel"):
                self.src.problem(at, f"a parallel step holds single steps, not {kind}")
                continue
            parts.append(Leaf(0, f"{label}/{kind}", kind, sub, KINDS[kind].role, rpt, self.src.line(at)))
        roles = [p.role for p in parts if p.role]
        if len(roles) != len(set(roles)):
            self.src.problem(loc, "steps that run together must drive different instruments")
        if parts:
            number = len(self.leaves()) + 1
            self.program.append(Leaf(number, label, "parallel", tuple(parts), None, rpt, self.src.line(loc)))


def parse(
    text: str,
    origin: str = "<text>",
    cell: CellSpec | None = None,
    overrides: dict[str, Any] | None = None,
) -> Protocol:
    """Parse, validate and compile protocol text for ``cell``; raise :class:`ProtocolError` listing every problem."""
    from .cells import CELL_TYPES

    cell = cell or CELL_TYPES["nmc811-5Ah"]
    data, src = read_yaml(text, origin)
    if data is None:
        raise ProtocolError([f"{origin}: the protocol file is empty"])
    if not isinstance(data, dict):
        raise ProtocolError([f"{origin}:1: protocol: expected a mapping of keys (name, steps, ...)"])
    try:
        header = Header.model_validate(data)
    except ValidationError as exc:
        src.validation(exc, (), lambda loc: ", ".join(Header.model_fields) if len(loc) == 1 else "default, help")
        raise ProtocolError(src.problems) from None
    builtins = cell.builtins()
    params: dict[str, Any] = builtins | {k: p.default for k, p in header.parameters.items()}
    for key, value in (overrides or {}).items():
        if key not in header.parameters:
            known = ", ".join(header.parameters) or "none"
            src.problems.append(f"{origin}: parameter {key!r} is not a parameter of {header.name} (known: {known})")
        params[key] = value
    params = {k: _substitute(v, builtins, ("parameters", k), src) for k, v in params.items()}  # "1.1 × $v_max"
    compiler = _Compiler(header, src, params, cell)
    compiler.steps(header.steps, ("steps",), "", False)
    limits = Limits()
    try:
        limits = Limits.model_validate(_substitute(header.limits, params, ("limits",), src), context=compiler.context())
    except ValidationError as exc:
        src.validation(exc, ("limits",), lambda _: ", ".join(Limits.model_fields))
    if src.problems:
        raise ProtocolError(src.problems)
    resolved = {k: params[k] for k in header.parameters}
    return Protocol(header, tuple(compiler.program), limits, resolved, cell, text, origin)


def load(path: str | Path, cell: CellSpec | None = None, overrides: dict[str, Any] | None = None) -> Protocol:
    """Read and compile a protocol file (see :func:`parse`)."""
    try:
        text = read_text(path, "protocol")
    except InputError as exc:
        raise ProtocolError([str(exc)]) from None
    return parse(text, str(path), cell, overrides)
