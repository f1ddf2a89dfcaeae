"""The engine stays free of Textual; the CLI starts without MLX."""

import subprocess
import sys
from pathlib import Path

import lora_tui

PACKAGE = Path(lora_tui.__file__).parent


def _modules_after_import(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_core_imports_no_textual():
    core_modules = sorted(
        ".".join(("lora_tui", *path.relative_to(PACKAGE).with_suffix("").parts))
        for path in (PACKAGE / "core").rglob("*.py")
        if path.stem != "__init__"
    )
    statement = "\n".join(f"import {module}" for module in core_modules)
    loaded = _modules_after_import(statement)
    assert core_modules, "no core modules found"
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_cli_startup_imports_no_mlx_or_spacy():
    loaded = _modules_after_import("import lora_tui.cli, lora_tui.core.models.store")
    heavy = {m for m in loaded if m.split(".")[0] in ("mlx", "mlx_lm", "spacy", "transformers")}
    assert not heavy


def test_tui_startup_imports_no_mlx_spacy_or_transformers():
    loaded = _modules_after_import(
        "from lora_tui.app import make_app\n"
        "import lora_tui.screens.datasets, lora_tui.screens.train, lora_tui.screens.dashboard\n"
        "import lora_tui.screens.adapters, lora_tui.screens.chat\n"
        "make_app()"
    )
    heavy = {m for m in loaded if m.split(".")[0] in ("mlx", "mlx_lm", "spacy", "transformers")}
    assert not heavy
