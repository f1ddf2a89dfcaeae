"""A wheel, installed in a fresh virtual environment, runs the app with each built-in theme."""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILT_IN = ("lora-dark", "lora-light", "lora-high-contrast")

HEADLESS_RUN = textwrap.dedent("""
    import asyncio, sys
    from importlib.metadata import version
    import lora_tui
    from lora_tui.app import make_app
    from lora_tui.core.locations import Locations
    from lora_tui.settings import Settings

    print("module", lora_tui.__file__)
    print("version", version("lora-tui"), lora_tui.__version__)

    async def main():
        for name in sys.argv[1:]:
            app = make_app(Locations.from_environment(), Settings(theme=name))
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                print("theme", name, app.theme, len(app.theme_problems))

    asyncio.run(main())
""")


def _run(command, **kwargs) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=300, **kwargs).stdout


def test_a_wheel_in_a_fresh_venv_finds_its_themes(tmp_path):
    source, wheels, venv = tmp_path / "source", tmp_path / "wheels", tmp_path / "venv"
    # Built from a copy, so nothing (build/, *.egg-info) is written into the checkout or left over from before.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "tests", "build", "*.egg-info", "__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, source])
    wheel = next(wheels.glob("lora_tui-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    fresh_python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", fresh_python]
    _run([*pip, "install", "--quiet", "--no-deps", "--no-index", wheel])
    # The dependencies come from this environment; lora-tui itself only from the wheel.
    fresh_site = _run([fresh_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    Path(fresh_site, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["LORA_TUI_HOME"] = str(tmp_path / "home")
    output = _run([fresh_python, "-c", HEADLESS_RUN, *BUILT_IN], cwd=tmp_path, env=env).splitlines()
    assert output[0].startswith(f"module {fresh_site}"), output[0]
    _, installed, declared = output[1].split()
    assert installed == declared  # one source for the version
    assert output[2:] == [f"theme {name} {name} 0" for name in BUILT_IN]
