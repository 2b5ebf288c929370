"""The package's shape as docs/architecture.md states it, read from the source with ast (nothing imported)."""

from __future__ import annotations

import ast
import os

from tests.support import REPO_ROOT

PACKAGE = os.path.join(REPO_ROOT, "model_compress")
# Lowest first; a module may import its own layer and the ones before it. Entry folders come last.
LAYERS = (("finite", "errors", "log", "files", "runtime"), ("data",), ("modeling",), ("training",), ("distill",),
          ("serving",), ("cli",), ("recipes",), ("easynlp",), ("commands",),
          ("distil", "mft", "metakd", "minilm", "export", "predict", "launch"))
LIBRARY = ("finite", "errors", "log", "files", "runtime", "data", "modeling", "training", "distill", "serving",
           "recipes", "easynlp")
MAX_LINES = 400


def _modules() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path[:-3], REPO_ROOT).replace(os.sep, ".").removesuffix(".__init__")
                found[module] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (``pkg.mod.func`` -> ``pkg.mod``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(nodes) -> set[str]:
    """Project modules named by the import statements among ``nodes``."""
    targets = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` names the submodule when there is one, else the package
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("model_compress."):
                target = _resolve(name)
                if target:
                    targets.add(target)
    return targets


def _trees() -> dict[str, ast.Module]:
    return {module: ast.parse(open(path, encoding="utf-8").read(), path) for module, path in MODULES.items()}


TREES = _trees()


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    raise AssertionError(f"{module}: not in any layer of tests/scripts/test_architecture.py (add it)")


def test_every_import_goes_to_the_same_layer_or_below():
    upward = []
    for module, tree in TREES.items():
        own = _layer(module)
        for target in _imports(ast.walk(tree)):  # function-level imports count too
            theirs = _layer(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycle_at_import_time():
    graph = {module: _imports(tree.body) - {module} for module, tree in TREES.items()}
    for module, targets in graph.items():  # importing a package's submodule also runs the package
        for target in list(targets):
            parent = target.rpartition(".")[0]
            while parent and parent != module and not module.startswith(parent + "."):
                targets.add(parent)
                parent = parent.rpartition(".")[0]
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [module, target]))
            elif target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_no_module_is_over_the_line_limit():
    long = {m: n for m, p in MODULES.items() if (n := sum(1 for _ in open(p, encoding="utf-8"))) > MAX_LINES}
    assert long == {}


def test_no_system_exit_below_the_entry_points():
    """The library and the recipes raise typed errors; only entry points (cli, commands, the entry folders,
    ``__main__`` modules, argparse's own ``error``, exit_without_oneflow and easynlp's ``guarded``) end the process."""
    allowed = {("model_compress.runtime", "exit_without_oneflow"), ("model_compress.easynlp.flags", "guarded"),
               ("model_compress.easynlp.flags", "error"), ("model_compress.easynlp.app", "run")}
    found = []
    for module, tree in TREES.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in LIBRARY or parts[-1] == "__main__":
            continue
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
                    if (module, func.name) not in allowed:
                        found.append(f"{module}.{func.name}")
    assert found == []
