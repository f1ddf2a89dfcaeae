"""Download a model from the Hugging Face hub (or whatever HF_ENDPOINT names) into its cache, as mlx-lm does.

Before any byte is fetched, a dry run says what the snapshot holds and what is
still missing, and the disk is checked for room. Progress is measured, not
guessed: the size of the repository's blobs in the cache, where huggingface_hub
writes each file as it arrives. A transfer that drops is resumed from the bytes
already there (a Range request, up to five times); a file that still fails is
dropped, and the next pull fetches only the files not yet whole.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.models.folders import HUB_ID, hf_hub_cache, is_model_dir
from lora_tui.core.units import human_bytes

# What a model needs (mlx-lm's own list, plus chat templates kept as files).
MODEL_FILES = ["*.json", "*.safetensors", "*.py", "tokenizer.model", "*.tiktoken", "*.txt", "*.jsonl", "*.jinja"]
DISK_MARGIN = 64 * 1024**2  # bytes left free beyond the download itself
_POLL_SECONDS = 0.25


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def pull_model(
    repo_id: str,
    revision: str | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Fetch `repo_id` (what is not cached yet); return its snapshot folder. Errors are one UserError."""
    from huggingface_hub import HfApi, snapshot_download

    if not HUB_ID.match(repo_id):
        raise UserError(f"{repo_id!r} is not a hub id: it reads ORG/NAME, e.g. mlx-community/SmolLM2-135M-Instruct.")
    options = {"revision": revision, "allow_patterns": MODEL_FILES}
    with _hub_errors(repo_id, revision), _quiet_hub():
        HfApi().model_info(repo_id, revision=revision)  # tells a typo from no connection, as the dry run cannot
        plan = snapshot_download(repo_id, dry_run=True, **options)
    missing = [item for item in plan if item.will_download]
    if not any(item.filename.endswith(".safetensors") for item in plan):
        raise UserError(
            f"{repo_id}: no safetensors weights there (a GGUF-only repository? download its .gguf file "
            "and run `lora-tui models import-gguf FILE`)."
        )
    total = sum(item.file_size or 0 for item in plan)
    still_needed = sum(item.file_size or 0 for item in missing)
    _check_room(still_needed, repo_id)
    files = f"{len(missing)} of {len(plan)} files ({human_bytes(still_needed)})"
    log(f"Downloading {repo_id} from {hub_endpoint()}: {files}")
    blobs = hf_hub_cache() / ("models--" + repo_id.replace("/", "--")) / "blobs"
    with _watching(blobs, total - still_needed, total, progress), _hub_errors(repo_id, revision), _quiet_hub():
        folder = Path(snapshot_download(repo_id, **options))
    progress(total, total)
    if not is_model_dir(folder):
        raise UserError(f"{repo_id}: the download has no config.json with safetensors weights; it is not a model.")
    return folder


class _quiet_hub:
    """huggingface_hub's own progress bars and retry warnings off: lora-tui reports progress and errors itself."""

    def __enter__(self) -> None:
        import logging

        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

        self.bars_were_off = are_progress_bars_disabled()
        disable_progress_bars()
        self.logger = logging.getLogger("huggingface_hub")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc) -> None:
        from huggingface_hub.utils import enable_progress_bars

        if not self.bars_were_off:
            enable_progress_bars()
        self.logger.setLevel(self.level)


def _check_room(needed: int, repo_id: str) -> None:
    cache = hf_hub_cache()
    existing = next(p for p in (cache, *cache.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed + DISK_MARGIN:
        raise UserError(
            f"{repo_id} needs {human_bytes(needed)} and {existing} has {human_bytes(free)} free; "
            "make room (or set HF_HUB_CACHE to a larger disk) and pull again."
        )


class _watching:
    """Reports the bytes in `blobs` (the ones already there count from `already`) while a download runs."""

    def __init__(self, blobs: Path, already: int, total: int, progress: Callable[[int, int], None]) -> None:
        self.blobs, self.total, self.progress = blobs, total, progress
        self.baseline = _folder_bytes(blobs) - already
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="download-progress")

    def _run(self) -> None:
        while not self.done.wait(_POLL_SECONDS):
            self.progress(min(self.total, _folder_bytes(self.blobs) - self.baseline), self.total)

    def __enter__(self) -> _watching:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def _folder_bytes(folder: Path) -> int:
    try:
        return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False))
    except OSError:
        return 0


class _hub_errors:
    """huggingface_hub's and the network's errors, as one sentence each."""

    def __init__(self, repo_id: str, revision: str | None) -> None:
        self.repo_id, self.revision = repo_id, revision

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or isinstance(error, UserError):
            return False
        message = self._message(error)
        if message is None:
            return False
        raise UserError(message) from None

    def _message(self, error: BaseException) -> str | None:
        import errno

        from huggingface_hub import errors

        repo = self.repo_id
        if isinstance(error, errors.GatedRepoError):
            return f"{repo} is gated: accept its terms on the hub, then log in with `hf auth login`."
        if isinstance(error, errors.RepositoryNotFoundError):
            return f"{repo}: no such model on {hub_endpoint()} (a typo? a private model needs `hf auth login`)."
        if isinstance(error, errors.RevisionNotFoundError):
            return f"{repo} has no revision {self.revision!r}."
        if isinstance(error, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)):
            return f"Cannot download {repo}: offline (HF_HUB_OFFLINE is set, or {hub_endpoint()} did not answer)."
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return (
                f"The disk filled while downloading {repo}; the files that arrived whole are kept in "
                f"{hf_hub_cache()}: make room and pull again to fetch the rest."
            )
        if type(error).__module__.startswith("httpx") and "Connect" in type(error).__name__:
            return f"Cannot download {repo}: {hub_endpoint()} does not answer ({error}). Check the connection."
        if isinstance(error, (errors.HfHubHTTPError, OSError)) or type(error).__module__.startswith("httpx"):
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return (
                f"Cannot download {repo} from {hub_endpoint()}: {reason.rstrip('.')}. The files that arrived whole "
                "are kept: pull again to fetch the rest."
            )
        return None
