"""Step kinds: one table, and steps that ask of their run only what StepContext lists."""

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_engine import CYCLING, run, virtual

from cellrig import open_run
from cellrig.protocols import ProtocolError, kinds, parse
from cellrig.protocols.kinds import KINDS, Kind, StepContext, cycler
from cellrig.protocols.states import RunState, advance, resumable

KINDS_DIR = Path(kinds.__file__).parent


def _context_members() -> set[str]:
    return {name for name in vars(StepContext) if not name.startswith("_")}


def test_steps_ask_their_run_only_what_the_step_context_lists_and_assign_nothing_of_it():
    allowed, asked, assigned = _context_members(), set(), []
    for path in sorted(KINDS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "r":
                asked.add(node.attr)
                if isinstance(node.ctx, ast.Store):
                    assigned.append(f"{path.name}:{node.lineno}: r.{node.attr} = …")
    assert asked, "no step asks anything of its run: the scan found nothing"
    assert asked <= allowed, f"steps ask their run for what StepContext does not list: {sorted(asked - allowed)}"
    assert not assigned, "steps assign state of their run:\n" + "\n".join(assigned)


def test_every_kind_has_one_distinct_settings_and_activity_class_named_once():
    classes = {row.model for row in KINDS.values()} | {row.activity for row in KINDS.values()}
    names = [c.__name__ for c in classes]
    assert len(names) == len(set(names))
    for kind, row in KINDS.items():
        if row.short is not None:
            assert row.short in row.model.model_fields, f"{kind}: short field {row.short!r} is not a setting"
        assert row.role is None or row.role in ("cycler", "chamber", "rig"), kind


def test_the_run_state_table_allows_what_a_run_does_and_nothing_after_its_end():
    assert advance(RunState.RUNNING, RunState.PAUSED) is RunState.PAUSED
    assert advance(RunState.PAUSED, RunState.RUNNING) is RunState.RUNNING
    assert advance(RunState.PAUSED, RunState.TRIPPED) is RunState.TRIPPED  # the supervisor watches a paused run
    with pytest.raises(ValueError, match="paused to finished"):
        advance(RunState.PAUSED, RunState.FINISHED)
    for end in (RunState.FINISHED, RunState.STOPPED, RunState.ABORTED, RunState.TRIPPED, RunState.FAILED):
        with pytest.raises(ValueError):
            advance(end, RunState.RUNNING)
    assert set(resumable(ack_trip=True)) - set(resumable()) == {RunState.TRIPPED}


def _guide_blocks() -> list[str]:
    guide = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text()
    section = guide.split("**Worked example: `relax`**", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_contributing_guides_worked_example_adds_a_kind_with_one_family_module_and_one_row(tmp_path, monkeypatch):
    """The guide's two blocks, added as written (the module's code into cycler's namespace, the row into
    KINDS), make a step kind that parses, passes pre-flight and runs on the virtual lab."""
    family, row = _guide_blocks()
    namespace = dict(vars(cycler))
    exec(compile(family, "CONTRIBUTING.md", "exec"), namespace)
    rows = eval(
        compile("{" + row + "}", "CONTRIBUTING.md", "eval"), {"Kind": Kind, "cycler": SimpleNamespace(**namespace)}
    )
    assert list(rows) == ["relax"]
    monkeypatch.setitem(KINDS, "relax", rows["relax"])
    text = """\
name: relax-after-discharge
steps:
  - cc: {current: -1C, until_voltage: $v_min, max_time: 20 min}
  - relax: {settled: 2 mV, window: 10 min, max_time: 4 h}
"""
    with pytest.raises(ProtocolError, match=r"<relax>:4: steps\[1\]\.relax\.setled: unknown key"):
        parse(text.replace("settled", "setled"), "<relax>")
    with virtual() as (_, lab):
        runner, (status, reason) = run(lab, parse(text, "<relax>"), CYCLING, tmp_path)
    assert (status, reason) == ("finished", None)
    run_file = open_run(runner.writer.path)
    events = run_file.events.set_index("kind")["time"]
    rows_ = run_file.stream("cycler").to_dataframe()
    relax = rows_[rows_["step"] == 2]
    assert len(relax) and (relax["current"].abs() < 1e-3).all()  # a rest on the channel
    started, ended = events["step_start"].iloc[1], events["step_end"].iloc[1]
    assert 600 <= ended - started < 4 * 3600  # ended by the settled voltage, after a whole window, before max_time
    # settled at the end (the step's own window reads records as they arrive, a little after their time stamps)
    end = relax[relax.index >= ended - 300]["voltage"]
    assert len(end) > 10 and end.max() - end.min() < 0.002
