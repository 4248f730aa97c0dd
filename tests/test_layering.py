"""The architecture's import rules, pinned: they are easy to break by accident and hard to notice."""

from __future__ import annotations

import ast
import re
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


def test_great_expectations_results_are_reached_only_through_probes_expectations() -> None:
    """Its cache folder (results and Data Docs) is read and written by the probe, never a stage."""
    assert _importers("audit.probes.expectation_cache") <= {"probes/expectations.py"}


def test_pyspark_is_imported_only_by_the_spark_engine() -> None:
    assert all(name.startswith("engines/spark/") for name in _importers("pyspark"))


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
    for name in (
        "config.py",
        "findings.py",
        "errors.py",
        "models.py",
        "results.py",
        "figures.py",
        "atomic.py",
    ):
        bad = sorted(n for n in _imports(PACKAGE / name) if n.startswith(upper))
        assert not bad, f"{name} imports {bad}"


def test_output_keeps_the_model_rendering_publishing_and_serving_apart() -> None:
    """The report model is data; renderers read it, publishing writes it, the server serves files."""
    output = PACKAGE / "output"
    model = _imports(output / "model.py")
    assert not sorted(n for n in model if n.startswith(("audit.output", "jinja2", "rich")))
    for path in (output / "render").glob("*.py"):
        bad = sorted(n for n in _imports(path) if n.startswith(_OUTPUT_WRITERS + _OUTPUT_SERVER))
        assert not bad, f"output/render/{path.name} imports {bad}"
    for name in ("publish.py", "reportsdir.py", "server.py"):
        bad = sorted(n for n in _imports(output / name) if n.startswith("audit.output.render"))
        assert not bad, f"output/{name} imports {bad}"  # the runner passes the page renderer in


_OUTPUT_WRITERS = ("audit.output.publish", "audit.output.reportsdir")
_OUTPUT_SERVER = ("audit.output.server",)

#: modules that write files by hand, on purpose; every other output goes through audit/atomic.py
_WRITES_FILES_ITSELF = {
    "atomic.py",  # the utility
    "demodata.py",  # the demo's generated input dataset, in a folder made for it
    "probes/expectation_cache.py",  # a cache entry, published by renaming its folder
    "output/reportsdir.py",  # the pre-flight probe that the reports folder is writable
    "loaders/zipwrite.py",  # zip members (ZipFile.open "w") into a zip audit.atomic streams
}
_WRITE_CALLS = {"write_bytes", "write_text", "mkstemp", "NamedTemporaryFile"}
_MODE = re.compile(r"[rwxabt+]+")


def _writes_a_file(call: ast.Call) -> bool:
    """``Path.write_bytes``, ``mkstemp``, or ``open``/``fdopen`` with a mode that (re)creates."""
    name = getattr(call.func, "attr", getattr(call.func, "id", ""))
    if name in _WRITE_CALLS:
        return True
    if name not in ("open", "fdopen"):
        return False
    modes = [*call.args, *(k.value for k in call.keywords if k.arg == "mode")]
    return any(
        isinstance(m, ast.Constant)
        and isinstance(m.value, str)
        and _MODE.fullmatch(m.value) is not None
        and any(c in m.value for c in "wx")  # appending to a log is not replacing a file
        for m in modes
    )


def test_output_files_are_written_through_audit_atomic() -> None:
    """One way to replace a file: temp file, fsync, rename, no temp left, never over a FIFO."""
    for path in PACKAGE.rglob("*.py"):
        module = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _writes_a_file(n)]
        assert module in _WRITES_FILES_ITSELF or not calls, (
            f"{module} line {calls[0].lineno if calls else 0} writes a file itself: "
            "use audit.atomic (write_atomic, atomic_open, write_output)"
        )


#: the licence modules that decide (no files, no store, no network); policy is their data model
_LICENSING_CORE = ("policy", "provenance", "verdicts", "totals")
#: what the core may import from the package: foundation modules and the core itself
_CORE_MAY_IMPORT = {
    "audit",
    "audit.config",
    "audit.errors",
    "audit.findings",
    "audit.models",
    "audit.results",
    "audit.figures",
} | {f"audit.licensing.{m}" for m in _LICENSING_CORE}


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
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, f"split these modules: {long}"


# ---- no import cycle anywhere in the package --------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(tree: ast.AST, type_checking: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement: module level, inside functions and classes, and (unless
    ``type_checking`` is off) under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        children = list(ast.iter_child_nodes(node))
        if not type_checking and _is_type_checking(node):
            children = list(node.orelse)  # type: ignore[attr-defined]
        todo.extend(children)
    return found


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the package modules its code imports; ``sources``: name -> (text, is_package).

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``; relative
    imports are resolved. Implicit imports of parent packages are left out: a package importing
    its own submodules is no cycle unless a submodule names the package itself. A type-only
    import (`if TYPE_CHECKING:`) is an edge too: two modules that need each other's types are
    one tangle (issue 9 found structure.py and structure_worker.py so), except in a package's
    ``__init__``, a facade whose names resolve lazily (PEP 562) and that nothing below imports
    at run time.
    """
    graph: dict[str, set[str]] = {}
    for name, (text, is_package) in sources.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _import_statements(ast.parse(text), type_checking=not is_package):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base
                    for a in node.names
                ]
            edges.update(t for t in targets if t in sources and t != name)
        graph[name] = edges
    return graph


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def _cycle_through(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """A shortest import path from the component's first module back to itself."""
    start, inside = members[0], set(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & inside):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as its import path, first module repeated at the end) per tangled group."""
    return [_cycle_through(graph, members) for members in _components(graph)]


def _package_graph() -> dict[str, set[str]]:
    sources = {
        _module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
        for p in PACKAGE.rglob("*.py")
    }
    return import_graph(sources)


def test_no_import_cycle_in_the_package() -> None:
    """A cycle makes import order matter and blocks splitting modules; function-level imports
    count too: they only postpone the cycle to the first call."""
    cycles = import_cycles(_package_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_sees_function_level_and_relative_imports() -> None:
    """The detector itself: cycles closed by an import inside a function, through a relative
    import, or by a type-only import are found with their paths; a package importing its own
    submodules, or naming one only for type checkers in its ``__init__``, is not a cycle."""
    type_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.{} import X\n"
    sources = {
        "pkg": ("from pkg import a\n" + type_only.format("d"), True),
        "pkg.a": ("from . import b\n", False),
        "pkg.b": ("def f():\n    from pkg.c import g\n", False),
        "pkg.c": ("import pkg.a\n", False),
        "pkg.d": (type_only.format("e"), False),
        "pkg.e": ("from pkg.d import x\nfrom pkg import __version__\n", False),
    }
    graph = import_graph(sources)
    assert graph["pkg"] == {"pkg.a"}
    assert graph["pkg.a"] == {"pkg.b"}
    assert import_cycles(graph) == [
        ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
        ["pkg.d", "pkg.e", "pkg.d"],
    ]
