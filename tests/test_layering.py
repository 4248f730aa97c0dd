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
            names.add(node.module)  # and each name: `from audit import store` imports audit.store
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
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


#: the licence modules that decide (no files, no store, no network); policy is their data model
_LICENSING_CORE = ("policy", "provenance", "verdicts", "totals")
#: what the core may import from the package: foundation modules and the core itself
_CORE_MAY_IMPORT = {"audit", "audit.config", "audit.errors", "audit.findings", "audit.models"} | {
    f"audit.licensing.{m}" for m in _LICENSING_CORE
}


def _core_may_import(name: str) -> bool:
    """Foundation and core modules, or a name inside one (`from audit.findings import Finding`)."""
    if name.startswith("rich"):
        return False
    if not name.startswith("audit"):
        return True
    parent = name.rsplit(".", 1)[0]
    return name in _CORE_MAY_IMPORT or (parent != "audit" and parent in _CORE_MAY_IMPORT)


def test_licensing_core_imports_no_io() -> None:
    """Provenance, verdicts and totals are pure: records and policy in, verdicts and findings out."""
    for name in _LICENSING_CORE:
        path = PACKAGE / "licensing" / f"{name}.py"
        bad = sorted(n for n in _imports(path) if not _core_may_import(n))
        assert not bad, f"licensing/{name}.py imports {bad}"
        assert "print(" not in path.read_text(encoding="utf-8"), f"licensing/{name}.py prints"


def test_licensing_imports_no_upper_layer_and_no_lower_layer_imports_it() -> None:
    """The licence package sits at the stage layer: it uses loaders, store and the foundation only."""
    upper = (
        "audit.cli",
        "audit.runner",
        "audit.stages",
        "audit.output",
        "audit.probes",
        "audit.checks",
        "audit.gate",
        "audit.schedule",
        "audit.demo",
        "audit.takedown",
        "audit.structure",
    )
    for path in (PACKAGE / "licensing").glob("*.py"):
        bad = sorted(n for n in _imports(path) if n.startswith(upper))
        assert not bad, f"licensing/{path.name} imports {bad}"
    lower = ("checks", "loaders", "store", "probes", "output", "catalogue")
    foundation = ("config.py", "findings.py", "errors.py", "models.py")
    for mod, names in _modules().items():
        if mod.startswith(tuple(f"{d}/" for d in lower)) or mod in foundation:
            bad = sorted(n for n in names if n.startswith("audit.licensing"))
            assert not bad, f"{mod} imports {bad}"


def test_no_import_cycle_inside_licensing() -> None:
    """Each licence module imports only the ones before it (the package docstring's order).

    ``__init__`` is left out: it resolves its public names lazily, on first use.
    """
    package = "audit.licensing."
    graph = {
        path.stem: {
            n.removeprefix(package).split(".")[0] for n in _imports(path) if n.startswith(package)
        }
        for path in (PACKAGE / "licensing").glob("*.py")
        if path.stem != "__init__"
    }
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, f"import cycle: {' -> '.join((*trail, module))}"
        if module not in done:
            for dep in sorted(graph.get(module, ())):
                visit(dep, (*trail, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


#: basenames shared before issue 9's reorganisation; this set may only shrink
_SHARED_BASENAMES_TODAY = {
    "gate.py",
    "images.py",
    "schedule.py",
    "service.py",
    "structure.py",
    "takedown.py",
    "urls.py",
}


def test_no_two_modules_share_a_basename() -> None:
    """`provenance.py` meant two different things once: a name must say which module it is."""
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            seen.setdefault(path.name, []).append(str(path.relative_to(PACKAGE)))
    shared = {name: paths for name, paths in seen.items() if len(paths) > 1}
    new = {name: paths for name, paths in shared.items() if name not in _SHARED_BASENAMES_TODAY}
    assert not new, f"modules sharing a name: {new}"


def test_every_module_is_short_enough_to_read() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long, f"split these modules: {long}"
