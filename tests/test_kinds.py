"""Step kinds: one table, and steps that ask of their run only what StepContext lists."""

import ast
from pathlib import Path

import pytest

from cellrig.protocols import kinds
from cellrig.protocols.kinds import KINDS, StepContext
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
