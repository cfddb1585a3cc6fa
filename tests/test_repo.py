"""The repository's promises to a new user: the README's commands, CI running them, clean code."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_test_one():
    main, tests = readme_commands()[:2]
    assert main.endswith("cellrig demo")
    assert tests.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests


def test_ruff_is_clean_and_the_code_formatted():
    for args in (["check"], ["format", "--check"]):
        out = subprocess.run([sys.executable, "-m", "ruff", *args, str(ROOT)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_storage_owns_reading_the_run_file_everything_else_uses_its_public_face():
    private = re.compile(r"^\s*(from\s+[.\w]*storage\._\w+\s+import|from\s+[.\w]*storage\s+import\s+_\w+)", re.M)
    outside = [p for p in (ROOT / "cellrig").rglob("*.py") if (ROOT / "cellrig" / "storage") not in p.parents]
    offenders = [
        str(p.relative_to(ROOT)) for p in [*outside, *(ROOT / "tests").glob("*.py")] if private.search(p.read_text())
    ]
    assert outside and offenders == []
    assert not list((ROOT / "cellrig" / "analysis").glob("_read*.py"))  # one reader: storage's
