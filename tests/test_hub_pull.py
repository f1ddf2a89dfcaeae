"""`lora-tui models pull`, against a stand-in for the hub on 127.0.0.1 (tests/hubserver.py).

Each pull runs in its own process: huggingface_hub reads HF_ENDPOINT and its cache folder
when it is imported. A transfer that drops is resumed with a Range request; huggingface_hub
writes what arrived in 10 MB chunks, so the tests shrink the chunk to see that on a small model.
A file that fails for good is not kept (huggingface_hub 2.4 deletes it), so across runs a pull
resumes by file.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hubserver import FakeHub

# `lora-tui ARGS` with huggingface_hub writing 4 kB chunks and not pausing before a retry.
RUNNER = """
import sys
import huggingface_hub.constants as constants
import huggingface_hub.file_download as download
constants.DOWNLOAD_CHUNK_SIZE = 4096
download.time.sleep = lambda seconds: None
from lora_tui.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def hub(tiny_model_dir, tmp_path):
    gguf_only = tmp_path / "gguf-repo"
    gguf_only.mkdir()
    (gguf_only / "model-Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(4096))
    (gguf_only / "README.md").write_text("a GGUF repository")
    with FakeHub({"someone/tiny": tiny_model_dir, "someone/tiny-GGUF": gguf_only}) as server:
        yield server


def pull(*args: str, endpoint: str, home: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(home / "hub"), **env}
    environment.pop("HF_HUB_OFFLINE", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", RUNNER, "models", "pull", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_a_pull_fetches_the_model_into_the_hub_cache(hub, tmp_path, tiny_model_dir):
    result = pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.parent == tmp_path / "hub" / "models--someone--tiny" / "snapshots"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert "Downloading someone/tiny from" in result.stderr and "Downloading 100%" in result.stderr
    assert "Traceback" not in result.stderr and "it/s" not in result.stderr  # huggingface_hub's own bars are off


def test_a_second_pull_fetches_nothing(hub, tmp_path):
    assert pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path).returncode == 0
    again = pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path)
    assert again.returncode == 0
    assert ": 0 of 4 files (0 B)" in again.stderr


def test_a_dropped_transfer_resumes_where_it_stopped(hub, tmp_path, tiny_model_dir):
    hub.drop_next(2)  # huggingface_hub retries by itself, from the bytes it has
    result = pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.range_starts and min(hub.range_starts) > 0
    weights = Path(result.stdout.strip()) / "model.safetensors"
    assert weights.read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()


def test_a_download_that_keeps_failing_is_one_sentence_and_the_next_pull_fetches_only_the_rest(hub, tmp_path):
    hub.drop_next(100, only="model.safetensors")
    failed = pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path)
    assert failed.returncode == 1
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("lora-tui: Cannot download someone/tiny from") and "pull again" in message
    assert "Traceback" not in failed.stderr
    hub.drop_next(0)
    again = pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert ": 1 of 4 files (" in again.stderr  # the three that arrived whole are not fetched again


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("someone/tpyo", "lora-tui: someone/tpyo: no such model on http://127.0.0.1"),
        ("not a hub id", "lora-tui: 'not a hub id' is not a hub id: it reads ORG/NAME"),
        ("someone/tiny-GGUF", "lora-tui: someone/tiny-GGUF: no safetensors weights there (a GGUF-only repository?"),
    ],
)
def test_a_wrong_id_is_one_sentence(hub, tmp_path, repo, expected):
    result = pull(repo, endpoint=hub.endpoint, home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_hub_answering_is_one_sentence_not_a_hang(tmp_path):
    result = pull("someone/tiny", endpoint="http://127.0.0.1:9", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "lora-tui: Cannot download someone/tiny: http://127.0.0.1:9 does not answer "
        "([Errno 111] Connection refused). Check the connection."
    )


def test_offline_is_one_sentence(hub, tmp_path):
    result = pull("someone/tiny", endpoint=hub.endpoint, home=tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("lora-tui: Cannot download someone/tiny: offline")


def test_no_room_is_refused_before_any_byte_arrives(hub, tmp_path):
    runner = RUNNER.replace(
        "from lora_tui.cli import main",
        "import collections, shutil\n"
        "shutil.disk_usage = lambda path: collections.namedtuple('usage', 'total used free')(10**9, 10**9, 1000)\n"
        "from lora_tui.cli import main",
    )
    environment = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "hub")}
    environment.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [sys.executable, "-c", runner, "models", "pull", "someone/tiny"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 1
    assert "someone/tiny needs 508.8 KB and" in result.stderr and "has 1.0 KB free" in result.stderr
    blobs = tmp_path / "hub" / "models--someone--tiny" / "blobs"
    assert not blobs.exists() or not any(blobs.iterdir())
