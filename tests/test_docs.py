"""Every `cellrig` command the README and docs show is a command the CLI accepts, options and all."""

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from cellrig.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented() -> list[tuple[str, str]]:
    """(page, command line) for every `cellrig …` line in the pages' bash blocks."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.+?)```", page.read_text(), flags=re.S):
            for line in block.splitlines():
                line = line.split(" #")[0].strip().rstrip("&").strip()
                for part in line.split("&&"):
                    part = part.strip()
                    if part.startswith("cellrig ") or "/cellrig " in part.split(" ")[0] + " ":
                        found.append((page.name, part[part.index("cellrig") :]))
    return found


COMMANDS = documented()


def test_the_docs_show_the_main_commands():
    shown = {line.split()[1] for _, line in COMMANDS}
    assert {"demo", "run", "campaign", "resume", "status", "pause", "protocols", "analyze", "report"} <= shown


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[f"{p}:{c}" for p, c in COMMANDS])
def test_each_documented_command_parses(page, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = shlex.split(line)[1:]
    for arg in args:  # paths the command expects to exist: as a user would have them by then
        if arg.endswith((".h5", ".toml", ".yaml")) and "/" not in arg.strip("."):
            Path(arg).touch()
        elif re.fullmatch(r"(runs|life|demo|out)/?", arg):
            Path(arg).mkdir(exist_ok=True)
    command: click.Command = main
    ctx = main.make_context("cellrig", list(args), resilient_parsing=True)
    while isinstance(command, click.Group) and _rest(ctx):
        name, *rest = _rest(ctx)
        command = command.get_command(ctx, name)
        assert command is not None, f"{page}: no command {name!r} in {line!r}"
        ctx = command.make_context(name, rest, parent=ctx)  # validates every option and argument
    assert not ctx.args, f"{page}: {line!r} leaves {ctx.args} unparsed"


def _rest(ctx: click.Context) -> list[str]:
    """What a group left for its subcommand (click ≥ 8.2 keeps the name apart, with a deprecation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*ctx.protected_args, *ctx.args]
