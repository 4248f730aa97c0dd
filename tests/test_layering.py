"""The architecture's import rules, pinned: they are easy to break by accident and hard to notice."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audit"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules() -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE)): _imports(p) for p in PACKAGE.rglob("*.py")}


def _importers(prefix: str) -> set[str]:
    return {
        mod
        for mod, names in _modules().items()
        if any(n == prefix or n.startswith(prefix + ".") for n in names)
    }


def test_great_expectations_is_imported_in_one_module_only() -> None:
    assert _importers("great_expectations") <= {"probes/expectations.py"}


def test_apscheduler_is_imported_in_one_module_only() -> None:
    assert _importers("apscheduler") <= {"schedule.py"}


def test_checks_are_pure() -> None:
    """Checks take records and return findings: no printing, no probes, no output, no CLI."""
    forbidden = ("audit.probes", "audit.output", "audit.cli", "audit.store", "audit.runner", "rich")
    for path in (PACKAGE / "checks").rglob("*.py"):
        names = _imports(path)
        bad = sorted(n for n in names if n.startswith(forbidden))
        assert not bad, f"{path.name} imports {bad}"
        assert "print(" not in path.read_text(encoding="utf-8"), f"{path.name} prints"


def test_foundation_does_not_import_upper_layers() -> None:
    upper = ("audit.checks", "audit.probes", "audit.output", "audit.cli", "audit.runner")
    for name in ("config.py", "findings.py", "errors.py", "models.py"):
        bad = sorted(n for n in _imports(PACKAGE / name) if n.startswith(upper))
        assert not bad, f"{name} imports {bad}"


def test_every_module_is_short_enough_to_read() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long, f"split these modules: {long}"
