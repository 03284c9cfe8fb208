"""Writing files safely: check the folder first, write to a temp file, then rename.

A failed or interrupted run never leaves a half-written report or archive.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from tdcheck.errors import ConfigError

REPORT_SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".txt": "table"}


def check_output_path(path: str, option: str) -> None:
    """Refuse (exit 2) a path whose folder is missing or that names a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{option}: the folder {os.path.dirname(path) or '.'!r} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"{option}: {path!r} is a folder, not a file")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{option}: cannot write into {folder!r}")


def report_format_for(path: str) -> str:
    """The report format implied by a file's suffix (``.json``, ``.md``, ``.txt``)."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        return REPORT_SUFFIXES[suffix]
    except KeyError:
        raise ConfigError(
            f"--output: cannot tell the format of {path!r}; use a name ending in "
            + ", ".join(REPORT_SUFFIXES)
        ) from None


@contextlib.contextmanager
def _atomic(path: str, mode: str) -> Iterator[IO[Any]]:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tdcheck-", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); a report gets the usual umask-based mode.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temp file name next to ``path`` for a library that writes by name (Keras'
    ``model.save``); moved to ``path`` when the block succeeds, removed otherwise.
    Never renames over a folder or other non-regular file."""
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ConfigError(f"{path!r} exists and is not a regular file; refusing to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tdcheck-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write text to ``path`` all at once or not at all."""
    with _atomic(path, "w") as handle:
        handle.write(text)


def atomic_write_with(path: str, writer: Callable[[IO[bytes]], None]) -> None:
    """Let ``writer`` fill a binary temp file, then move it to ``path``."""
    with _atomic(path, "wb") as handle:
        writer(handle)


def save_arrays(path: str, arrays: dict[str, Any]) -> None:
    """Save named arrays as an uncompressed ``.npz``, atomically."""
    import numpy as np

    atomic_write_with(path, lambda handle: np.savez(handle, **arrays))
