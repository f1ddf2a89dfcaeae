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
