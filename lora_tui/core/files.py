"""Writes that never leave half a file or half a folder behind."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lora_tui.core.errors import UserError

# mkstemp/mkdtemp create private (0600/0700) entries; give renamed-in files
# the mode a plain open() would have.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w", exclusive: bool = False) -> Iterator:
    """A file handle on a temp file beside `path`, renamed into place on success. With `exclusive`, a file
    that appears at `path` meanwhile is kept and the write refused (for outputs that must be new)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _place(Path(tmp), path, exclusive)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: Path, exclusive: bool = False) -> Iterator[Path]:
    """A temp path beside `path`, for a writer that opens the file itself; renamed into place on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield Path(tmp)
        _place(Path(tmp), path, exclusive)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _place(tmp: Path, path: Path, exclusive: bool) -> None:
    if not exclusive:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails, where rename would replace, if the name exists by now
    except FileExistsError:
        raise appeared(path) from None
    os.unlink(tmp)


def appeared(path: Path) -> UserError:
    return UserError(f"{path} appeared while lora-tui was writing it; it is kept as it is and nothing was written.")


def atomic_write_bytes(path: Path, data: bytes, exclusive: bool = False) -> None:
    with atomic_writer(path, "wb", exclusive) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, exclusive: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), exclusive)


@contextlib.contextmanager
def building_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside `final`; move it to `final` only on success, and never onto a folder
    that appeared there meanwhile.

    On any error the temp folder is removed, so `final` either appears whole
    or not at all.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        yield staging
        _usual_modes(staging)
        rename_no_replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _usual_modes(folder: Path) -> None:
    """The modes a plain open() and mkdir() give, on everything in a built folder: libraries that write
    through temp files of their own (safetensors' save_file) leave them private (0600)."""
    os.chmod(folder, 0o777 & ~_UMASK)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~_UMASK)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~_UMASK)


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename, refusing (UserError) if `target` exists: one system call where the OS has one
    (Linux renameat2 RENAME_NOREPLACE, macOS renamex_np RENAME_EXCL), else check-then-rename."""
    flag_calls = {"linux": ("renameat2", 1), "darwin": ("renamex_np", 4)}
    name, flag = flag_calls.get(sys.platform, (None, 0))
    function = getattr(_libc(), name, None) if name else None
    if function is None:
        if os.path.lexists(target):
            raise appeared(target)
        os.rename(source, target)
        return
    at_cwd = -100  # AT_FDCWD: paths relative to the working folder, as os.rename takes them
    paths = (os.fsencode(source), os.fsencode(target))
    arguments = (at_cwd, paths[0], at_cwd, paths[1], flag) if name == "renameat2" else (*paths, flag)
    if function(*arguments) != 0:
        error = ctypes.get_errno()
        if error in (errno.EEXIST, errno.ENOTEMPTY):
            raise appeared(target)
        raise OSError(error, os.strerror(error), str(target))


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


@contextlib.contextmanager
def exclusively(path: Path) -> Iterator[None]:
    """Hold an OS lock beside `path` (waiting for it) for a read-modify-write that other processes also do.

    The lock is the hidden file .NAME.lock next to `path`; it dies with the process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_path(path: Path) -> Path:
    """`path` if nothing is there, else the first free PATH-2, PATH-3, ..."""
    path = Path(path)
    number = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{number}")
        number += 1
    return candidate


def prompt_lines(path: Path) -> list[str]:
    """The prompts of a shipped prompt file: one a line, without blank lines and # comments."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]
