"""Writing files so that a crash, a full disk or Ctrl-C never leaves a half-written one.

Every file digitnet writes goes through write_atomically: the bytes go to a temporary file in
the target's folder, are flushed to disk, and the temporary file is renamed over the target.
A rename within one folder is atomic, so readers see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class WriteFailedError(OSError):
    """A file could not be written; the previous file at that path, if any, is unchanged."""


def check_writable(path: str | Path) -> Path:
    """Raise WriteFailedError now if path could not be written later; return it as a Path.

    Long jobs call this before they start, so a typo in an output path costs seconds, not the
    whole run.
    """
    path = Path(path)
    folder = folder_of(path)
    if not folder.is_dir():
        raise WriteFailedError(f"{path}: cannot write there: folder {folder} does not exist")
    if path.is_dir():
        raise WriteFailedError(f"{path}: is a folder, expected a file name")
    if not os.access(folder, os.W_OK):
        raise WriteFailedError(f"{path}: cannot write there: folder {folder} is not writable")
    return path


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call write(handle) on a temporary file beside path, then rename it over path.

    On any failure the temporary file is removed and the old file at path is left as it was;
    an OSError is reported as a WriteFailedError that names path and says so.
    """
    path = Path(path)
    existed = path.exists()
    check_writable(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder_of(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o666 & ~current_umask())
        os.replace(temp_name, path)
    except BaseException as exc:
        Path(temp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteFailedError):
            raise WriteFailedError(describe_failed_write(path, exc, existed)) from exc
        raise
    sync_folder(folder_of(path))


def folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def current_umask() -> int:
    """The process umask; mkstemp creates files readable by their owner only, saves should not.

    NOTE: reading the umask means setting it and back, which is not atomic; digitnet saves
    from the main thread only.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename to disk, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def describe_failed_write(path: Path, exc: OSError, existed: bool) -> str:
    reason = (exc.strerror or str(exc)).lower()
    kept = "the previous file is unchanged" if existed else "nothing was written"
    return f"{path}: saving failed: {reason}; {kept}"
