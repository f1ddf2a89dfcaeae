"""`lora-tui train`: headless progress, refusals, Ctrl-C and SIGKILL recovery."""

import json
import shutil
import signal

import pytest
from trainkit import arithmetic_rows, read_until, spawn_lora_tui, write_dataset

from lora_tui.cli import main


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", arithmetic_rows(24), arithmetic_rows(8, offset=100))


def _train(*extra, model, data, name="arith"):
    return [
        "train",
        "--model",
        str(model),
        "--data",
        str(data),
        "--name",
        name,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-seq-length",
        "128",
        *extra,
    ]


def test_headless_run_prints_one_line_per_report(tiny_model_dir, data, isolated_home, capsys):
    assert main(_train(model=tiny_model_dir, data=data)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("started: 24 train / 8 valid records, 6 steps")
    assert sum(line.startswith("step ") for line in lines) == 6
    assert lines[-1].startswith("finished (completed) at step 6")
    assert (isolated_home.adapters_dir / "arith" / "adapters.safetensors").is_file()


def test_a_model_given_by_its_folder_is_recorded_by_its_listed_name(tiny_model_dir, data, isolated_home, capsys):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny-llama")
    folder = isolated_home.models_dir / "tiny-llama"
    assert main(_train(model=folder, data=data)) == 0
    meta = json.loads((isolated_home.adapters_dir / "arith" / "lora_tui.json").read_text())
    assert (meta["base_model"], meta["base_model_path"]) == ("tiny-llama", str(folder))


def test_refuses_data_with_errors(tiny_model_dir, tmp_path, isolated_home, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    assert main(_train(model=tiny_model_dir, data=bad)) == 1
    captured = capsys.readouterr()
    assert "line 2: invalid JSON" in captured.out and "has errors" in captured.err
    assert not (isolated_home.adapters_dir / "arith").exists()


def test_refuses_taken_name_missing_model_and_bad_values(tiny_model_dir, data, isolated_home, capsys):
    (isolated_home.adapters_dir / "arith").mkdir(parents=True)
    assert main(_train(model=tiny_model_dir, data=data)) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(_train(model="no-such-model", data=data, name="other")) == 1
    assert "No model named 'no-such-model'" in capsys.readouterr().err
    assert main(_train("--rank", "300", model=tiny_model_dir, data=data, name="other")) == 1
    assert "--rank must be between 4 and 128 (got 300)" in capsys.readouterr().err  # named as typed
    assert main(_train(model=tiny_model_dir, data=data, name="../escape")) == 1
    assert not (isolated_home.adapters_dir / "other").exists()


def test_overwrite_and_config(tiny_model_dir, data, tmp_path, isolated_home, capsys):
    config = tmp_path / "c.toml"
    config.write_text("rank = 16\n")
    assert main(_train("--config", str(config), model=tiny_model_dir, data=data)) == 0
    assert main(_train("--config", str(config), "--rank", "4", "--overwrite", model=tiny_model_dir, data=data)) == 0
    adapter_config = json.loads((isolated_home.adapters_dir / "arith" / "adapter_config.json").read_text())
    assert adapter_config["lora_parameters"]["rank"] == 4


@pytest.mark.parametrize(
    ("signal_number", "said"),
    [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, None)],  # after SIGHUP: no terminal
)
def test_ctrl_c_sigterm_and_sighup_save_and_exit_130(tiny_model_dir, data, isolated_home, signal_number, said):
    process = spawn_lora_tui(_train("--epochs", "30", model=tiny_model_dir, data=data), isolated_home.data_dir.parent)
    read_until(process, "step 2 ")
    process.send_signal(signal_number)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    if said:
        assert f"{said}: stopping after this step and saving" in out and "cancelled at step" in out
    adapter = isolated_home.adapters_dir / "arith"
    assert json.loads((adapter / "lora_tui.json").read_text())["status"] == "cancelled"
    assert json.loads((adapter / "events.jsonl").read_text().splitlines()[-1])["type"] == "cancelled"
    assert (adapter / "adapters.safetensors").is_file() and "Traceback" not in err


def test_sigkill_then_resume(tiny_model_dir, data, isolated_home, capsys):
    process = spawn_lora_tui(
        _train("--epochs", "4", "--save-every", "2", model=tiny_model_dir, data=data), isolated_home.data_dir.parent
    )
    read_until(process, "checkpoint step 4")
    process.kill()
    process.wait()
    assert main(["train", "--name", "arith", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "note: Resumed from step-" in out and "finished (completed) at step 24" in out
    assert main(["train", "--name", "never-ran", "--resume"]) == 1


def test_a_preset_sets_values_that_config_and_flags_override(tiny_model_dir, data, tmp_path, isolated_home):
    config = tmp_path / "c.toml"
    config.write_text("learning_rate = 0.0005\n")
    args = _train("--preset", "knowledge", "--config", str(config), "--rank", "16", model=tiny_model_dir, data=data)
    assert main(args) == 0
    parameters = json.loads((isolated_home.adapters_dir / "arith" / "run.json").read_text())["parameters"]
    assert parameters["target_modules"] == ["q", "k", "v", "o", "gate", "up", "down"]  # from the preset
    assert parameters["learning_rate"] == 0.0005  # the config over the preset
    assert parameters["rank"] == 16 and parameters["epochs"] == 1  # flags over both


def test_train_help_lists_the_presets_and_what_they_set(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "knowledge: new facts" in out and "rank 32, epochs 8, learning-rate 0.0002" in out
    assert "target-modules q,k,v,o,gate,up,down" in out
