"""The package's layers: a module imports only from its own package or from layers below it,
and no two modules import each other, directly or round a longer cycle. Read from the source
(every `import`, at module level or inside a function), so nothing needs to run."""

from __future__ import annotations

import ast
from pathlib import Path

import asr_kd

ROOT = Path(asr_kd.__file__).parent

# Lowest first; packages on one line are on one level and do not import each other.
LAYERS = [
    ["utils"],
    ["data", "features", "score"],
    ["lang"],
    ["hmm"],
    ["nets"],
    ["acoustic"],
    ["train"],
    ["decode", "export"],
    ["steps"],
    ["cli"],
    ["__main__", "__init__"],
]
LEVEL = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(("asr_kd",) + parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The asr_kd modules that `path` imports (a name imported from a package counts as the
    package's submodule when there is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("asr_kd")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asr_kd"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in modules else node.module)
    return found & set(modules)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} <= set(LEVEL)


def test_imports_only_go_down():
    modules = _modules()
    wrong = []
    for mod, path in modules.items():
        pkg = _package(mod)
        for dep in _imports(path, modules):
            dpkg = _package(dep)
            if dpkg != pkg and LEVEL[dpkg] >= LEVEL[pkg]:
                wrong.append(f"{mod} (level {LEVEL[pkg]}) imports {dep} (level {LEVEL[dpkg]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    # A package's __init__ re-exports its submodules, which import siblings through the
    # package: only module-to-module edges count, not a submodule's import of its own package.
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_private_name_imported_from_another_module():
    wrong = []
    for path in sorted(ROOT.parent.glob("*/**/*.py")):
        if ".git" in path.parts or "exp" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("asr_kd",
                                                                                  "local")):
                wrong += [f"{path}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_")]
    assert not wrong, "\n".join(wrong)
