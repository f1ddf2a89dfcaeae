import os

import pytest

from lora_tui.core.files import atomic_write_text, building_dir


def test_atomic_write_replaces_whole_file_and_keeps_mode(tmp_path):
    target = tmp_path / "notes.txt"
    atomic_write_text(target, "first")
    os.chmod(target, 0o640)
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_building_dir_appears_only_on_success(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError), building_dir(final) as staging:
        (staging / "half.bin").write_text("x")
        raise RuntimeError("crash while building")
    assert list(tmp_path.iterdir()) == []

    with building_dir(final) as staging:
        (staging / "whole.bin").write_text("x")
    assert (final / "whole.bin").read_text() == "x"
    assert final.stat().st_mode & 0o777 != 0o700
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_an_exclusive_write_keeps_a_file_that_appeared_meanwhile(tmp_path):
    from lora_tui.core.errors import UserError
    from lora_tui.core.files import atomic_writer

    target = tmp_path / "out.jsonl"
    with (
        pytest.raises(UserError, match="appeared while lora-tui was writing it; it is kept"),
        atomic_writer(target, exclusive=True) as handle,
    ):
        handle.write("ours\n")
        target.write_text("the user's\n")  # made by someone else while we write
    assert target.read_text() == "the user's\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


@pytest.mark.parametrize("system_call", [True, False])
def test_a_folder_that_appeared_meanwhile_is_never_replaced(tmp_path, monkeypatch, system_call):
    import lora_tui.core.files as files
    from lora_tui.core.errors import UserError

    if not system_call:  # the check-then-rename fallback, for systems without renameat2/renamex_np
        monkeypatch.setattr(files, "_libc", lambda: object())
    final = tmp_path / "export"
    with pytest.raises(UserError, match="appeared while lora-tui was writing it"), building_dir(final) as staging:
        (staging / "model.gguf").write_text("ours")
        final.mkdir()  # an empty folder: a plain rename would replace it without a word
    assert final.is_dir() and list(final.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_redact_never_replaces_an_output_made_while_it_ran(tmp_path, monkeypatch, capsys):
    import lora_tui.core.data.pii as pii
    from lora_tui.cli import main

    data = tmp_path / "pii.jsonl"
    data.write_text('{"text": "Call me at 555-0100."}\n' * 3)
    out = tmp_path / "race.jsonl"
    lines = pii.redacted_lines

    def racing(*args, **kwargs):
        for number, line in enumerate(lines(*args, **kwargs)):
            if number == 1:
                out.write_text("mine\n")
            yield line

    monkeypatch.setattr(pii, "redacted_lines", racing)
    assert main(["data", "redact", str(data), "--out", str(out), "--categories", "phone"]) == 1
    assert f"{out} appeared while lora-tui was writing it" in capsys.readouterr().err
    assert out.read_text() == "mine\n"


def test_a_built_folder_has_the_usual_modes_whatever_wrote_it(tmp_path):
    final = tmp_path / "peft"
    with building_dir(final) as staging:
        private = staging / "adapter_model.safetensors"
        private.write_bytes(b"x")
        os.chmod(private, 0o600)  # what safetensors' save_file leaves
        (staging / "sub").mkdir(mode=0o700)
    umask = os.umask(0)
    os.umask(umask)
    assert (final / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (final / "sub").stat().st_mode & 0o777 == 0o777 & ~umask
