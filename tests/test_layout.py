"""The package's shape: no import cycles, nothing imports upward, the engine free of Textual, a light start."""

import ast
import subprocess
import sys
from pathlib import Path

import lora_tui

PACKAGE = Path(lora_tui.__file__).parent
HEAVY = ("mlx", "mlx_lm", "spacy", "transformers")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(module: str) -> set[str]:
    """The lora_tui modules `module` imports, anywhere in it (deferred imports too), read from its source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` names a module; `from module import name` names the module itself
            found |= {
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                for alias in node.names
            }
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return components


def test_the_graph_sees_the_imports():
    assert "lora_tui.core.training.job" in GRAPH["lora_tui.core.training.loop"]
    assert "lora_tui.screens.dashboard" in GRAPH["lora_tui.app"]


def test_no_import_cycles():
    assert _cycles() == []


def test_core_imports_nothing_outside_core():
    upward = {
        (m, t)
        for m, targets in GRAPH.items()
        if m.startswith("lora_tui.core")
        for t in targets
        if not t.startswith("lora_tui.core")
    }
    assert upward == set()


def test_widgets_import_no_screens():
    upward = {
        (m, t)
        for m, targets in GRAPH.items()
        if m.startswith("lora_tui.widgets")
        for t in targets
        if t.startswith(("lora_tui.screens", "lora_tui.app", "lora_tui.cli"))
    }
    assert upward == set()


def _modules_after_import(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_core_imports_no_textual():
    core_modules = sorted(module for module in MODULES if module.startswith("lora_tui.core"))
    assert len(core_modules) > 30
    loaded = _modules_after_import("\n".join(f"import {module}" for module in core_modules))
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_cli_startup_imports_no_mlx_or_spacy():
    loaded = _modules_after_import("import lora_tui.cli, lora_tui.core.models.store")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_tui_startup_imports_no_mlx_spacy_or_transformers():
    loaded = _modules_after_import("from lora_tui.app import make_app\nmake_app()")
    assert "lora_tui.screens.chat" in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
