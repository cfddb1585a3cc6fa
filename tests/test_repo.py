"""The repository's promises to a new user: the README's commands, CI running them, clean code."""

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@dataclass(frozen=True)
class Import:
    """One import of a cellrig module by another, where it is written."""

    importer: str
    imported: str
    where: str  # path:line
    line: str

    def __str__(self) -> str:
        return f"{self.where}: {self.line}"


def cellrig_imports() -> list[Import]:
    """Every import of a cellrig module in the package (lazy and type-checking ones too), relative ones resolved."""
    files = {p: ".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "cellrig").rglob("*.py")}
    modules = {name.removesuffix(".__init__") for name in files.values()}
    out = []
    for path, name in files.items():
        package = name.removesuffix(".__init__") if path.name == "__init__.py" else name.rpartition(".")[0]
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                within_package = package.rsplit(".", node.level - 1)[0] + (f".{node.module}" if node.module else "")
                base = within_package if node.level else node.module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            where, line = f"{path.relative_to(ROOT)}:{node.lineno}", lines[node.lineno - 1].strip()
            importer = name.removesuffix(".__init__")
            out += [Import(importer, t, where, line) for t in dict.fromkeys(targets) if t.split(".")[0] == "cellrig"]
    return out


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


#: Highest first: a module of a layer imports none of a layer above it.
LAYERS = [
    [
        ("cellrig.cli", "cellrig.demo"),
        ("cellrig.protocols",),
        ("cellrig.lab", "cellrig.lab_locks", "cellrig.lab_control"),
        ("cellrig.instruments",),
    ],
    [("cellrig.analysis",), ("cellrig.storage",)],
]
#: The virtual lab is a product of its own: in the package only the commands bring it in.
SIM_USERS = ("cellrig.cli", "cellrig.demo")


def test_layers_import_only_downwards_and_the_virtual_lab_only_from_the_commands():
    imports = cellrig_imports()
    assert len(imports) > 100
    wrong = []
    for layers in LAYERS:
        for i, layer in enumerate(layers):
            above = [p for higher in layers[:i] for p in higher]
            wrong += [
                f"{imp}  ({imp.importer} is below {imp.imported})"
                for imp in imports
                if within(imp.importer, *layer) and within(imp.imported, *above)
            ]
    wrong += [
        f"{imp}  (cellrig.sim is imported only by {', '.join(SIM_USERS)})"
        for imp in imports
        if within(imp.imported, "cellrig.sim") and not within(imp.importer, "cellrig.sim", *SIM_USERS)
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def import_cycle(imports: list[Import]) -> list[Import]:
    """The imports of one cycle among the importers of ``imports`` (empty if there is none)."""
    edges: dict[str, list[Import]] = {}
    for imp in imports:
        if imp.importer != imp.imported:
            edges.setdefault(imp.importer, []).append(imp)
    done: set[str] = set()

    def visit(module: str, path: list[Import]) -> list[Import]:
        for imp in edges.get(module, []):
            on_path = [p.importer for p in path]
            if imp.imported in on_path:
                return [*path[on_path.index(imp.imported) :], imp]
            if imp.imported not in done:
                cycle = visit(imp.imported, [*path, imp])
                if cycle:
                    return cycle
        done.add(module)
        return []

    for start in list(edges):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return []


@pytest.mark.parametrize("package", ["cellrig.protocols", "cellrig.cli"])
def test_no_import_cycle_among_the_modules_of(package):
    """Every import counts, lazy and type-checking ones too: a cycle hidden in a function is a cycle all the same."""
    inside = [i for i in cellrig_imports() if within(i.importer, package) and within(i.imported, package)]
    assert inside
    cycle = import_cycle(inside)
    assert not cycle, f"{package}: an import cycle:\n" + "\n".join(map(str, cycle))
