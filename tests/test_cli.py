"""The command-line contract: exit codes, --json, one clear message on errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tinymodels import write_gguf

from lora_tui.cli import main


def test_models_list_json_is_one_document(isolated_home, tiny_model_dir, capsys):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    assert main(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listing] == ["tiny"]
    assert set(listing[0]) == {
        "name",
        "path",
        "source",
        "architecture",
        "parameters",
        "quantization",
        "size_bytes",
        "has_chat_template",
        "format",
    }
    assert listing[0]["format"] == "mlx"


def test_models_list_table(isolated_home, tiny_model_dir, capsys):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "ARCH", "PARAMS", "QUANTIZATION", "SIZE", "CHAT", "SOURCE"]
    assert "tiny" in out and "llama" in out


def test_import_gguf_prints_folder_last(isolated_home, tiny_model_dir, tmp_path, capsys):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "tiny.gguf", "Q8_0")
    assert main(["models", "import-gguf", str(gguf_file), "--name", "imported"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(isolated_home.models_dir / "imported")


@pytest.mark.parametrize(
    "argv",
    [
        ["models", "import-gguf", "/no/such/file.gguf"],
        ["models", "import-gguf", "{gguf}", "--name", "../up"],
    ],
)
def test_user_errors_exit_1_with_one_line(argv, tiny_model_dir, tmp_path, isolated_home, capsys):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "t.gguf", "Q4_0")
    assert main([arg.format(gguf=gguf_file) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lora-tui: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "frobnicate"])
    assert exit_info.value.code == 2


def test_console_script_and_module_entry_point(tmp_path):
    env = {**os.environ, "LORA_TUI_HOME": str(tmp_path)}
    console_script = Path(sys.executable).parent / "lora-tui"
    for command in ([str(console_script)], [sys.executable, "-m", "lora_tui"]):
        result = subprocess.run(
            [*command, "models", "import-gguf", str(tmp_path / "missing.gguf")], capture_output=True, text=True, env=env
        )
        assert result.returncode == 1
        assert result.stderr.strip() == f"lora-tui: {tmp_path / 'missing.gguf'}: no such file."


@pytest.mark.parametrize("json_output", [False, True])
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path, json_output):
    """`lora-tui data check FILE | head -1`: the reader is gone by the time lora-tui writes."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"record {i}"}) + "\n" for i in range(200)))
    command = [sys.executable, "-m", "lora_tui", "data", "check", str(data), *(["--json"] if json_output else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before lora-tui has started: its first write meets a closed pipe
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert process.returncode == 141


@pytest.mark.parametrize("format_args", [["fuse"], ["export", "--format", "gguf", "--no-verify"]])
def test_a_full_disk_while_fusing_or_exporting_is_one_sentence(
    tiny_adapter, isolated_home, tmp_path, monkeypatch, capsys, format_args
):
    import errno

    import gguf
    import mlx.core as mx

    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    monkeypatch.setattr(
        mx,
        "save_safetensors",
        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("[write] Unable to write 4096 bytes to file.")),
    )
    monkeypatch.setattr(
        gguf.GGUFWriter,
        "write_tensors_to_file",
        lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device", "out.gguf")),
    )
    exports = tmp_path / "exports"
    exports.mkdir()
    command, *options = format_args
    assert main(["adapters", command, "arith", *options, "--out", str(exports / "out")]) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "nothing half-written was left" in err and "Traceback" not in err
    assert list(exports.iterdir()) == []


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("--name=--", "The adapter name is missing or not text"),
        ("--name=-lead", "The adapter name '-lead' may not start with '-'"),
    ],
)
def test_a_name_a_command_line_cannot_take_is_refused(tiny_model_dir, tmp_path, capsys, flag, said):
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(tmp_path), flag]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lora-tui: {said}") and "Traceback" not in err
