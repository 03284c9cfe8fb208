"""Writing files safely: check the target first, write to a temp file, then rename.

A failed or interrupted run never leaves a half-written report or archive.

What an output path may name (checked before any work, see :func:`check_output_path`):

* a new or existing **regular file**: written to a temp file in the same folder, then renamed
  over it (an existing file keeps no half-written state);
* a **symbolic link**: followed; the file it points to is replaced the same way and the link
  stays a link (a dangling link creates its target);
* a **character device or a pipe** (``/dev/null``, a FIFO, a shell process substitution
  such as ``>(gzip > r.gz)``) or any name under ``/dev`` or ``/proc`` (``/dev/stdout`` may be
  the file the shell redirected stdout to): written straight through in append mode, never
  renamed over nor truncated, so even as root ``--junit /dev/null`` leaves ``/dev/null`` a
  device and ``--junit /dev/stdout > log`` adds to ``log``;
* refused (exit 2): an empty path, a folder, a missing folder, a read-only file, a block
  device or socket, the same file given to two output options, and an output that is one
  of the command's input files (``--save-arrays b.npz --baseline b.npz``).

A **model file** (``rewrite``/``export`` OUT, written by a library by name) must be a regular
file or a link to one (:func:`check_file_output`): a device, a pipe or a name under ``/dev``
is refused before any work. :func:`atomic_path` writes it beside the link's *target* and
renames onto the target, so a link stays a link; whatever the library leaves in the
temp folder while writing (Keras's ``tmpXXXX/assets``) is removed, even on a full disk.

Every check runs before any work (before TensorFlow loads); a write that fails anyway (a
full disk) is one line, exit 3, and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from tdcheck.errors import ConfigError, EnvironmentProblem

REPORT_SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".txt": "table"}


def is_stream_target(path: str) -> bool:
    """True for a character device, a pipe, or a name under /dev or /proc (``/dev/stdout``
    may stand for the very file the shell redirected stdout to): written through, in append
    mode, never replaced."""
    if os.path.abspath(path).startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


_STANDARD = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def _descriptor_of(path: str) -> int | None:
    """The open descriptor a name such as ``/dev/stdout`` or ``/dev/fd/3`` stands for."""
    name = os.path.abspath(path)
    if name in _STANDARD:
        return _STANDARD[name]
    match = re.fullmatch(r"/(?:dev/fd|proc/self/fd)/([0-9]+)", name)
    return int(match.group(1)) if match else None


def check_output_path(path: str, option: str) -> None:
    """Refuse (exit 2) a path that cannot take a report; see the module docstring."""
    if not path or not path.strip():
        raise ConfigError(f"{option}: the path is empty")
    if "\x00" in path:
        raise ConfigError(f"{option}: the path contains a NUL byte")
    if os.path.isdir(path):
        raise ConfigError(f"{option}: {path!r} is a folder, not a file")
    if os.path.exists(path):
        mode = os.stat(path).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or is_stream_target(path):
            if not os.access(path, os.W_OK):
                raise ConfigError(f"{option}: cannot write to {path!r}")
            return
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{option}: {path!r} is not a regular file, a device or a pipe")
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"{option}: {path!r} is read-only; remove it or choose another path")
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        shown = (os.path.dirname(path) or ".") if real == os.path.abspath(path) else folder
        raise ConfigError(f"{option}: the folder {shown!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{option}: cannot write into {folder!r}")


def check_file_output(path: str, option: str) -> None:
    """:func:`check_output_path` for a file a library writes by name (a ``.keras`` model):
    also refuse devices, pipes and names under ``/dev`` (exit 2), before any work."""
    check_output_path(path, option)
    if is_stream_target(path):
        raise ConfigError(
            f"{option}: {path!r} is a device or a pipe; a model is written to a regular file"
        )


def check_not_inputs(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Refuse (exit 2) an output option naming a file the command reads (it would be
    overwritten, e.g. ``--save-arrays b.npz --baseline b.npz``)."""
    for out_option, out in outputs.items():
        if out is None or is_stream_target(out):
            continue
        for in_option, source in inputs.items():
            if source is not None and _same_file(out, source):
                raise ConfigError(
                    f"{out_option} and {in_option} name the same file {out!r}; the output "
                    "would overwrite what the command reads"
                )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_distinct(paths: dict[str, str | None]) -> None:
    """Refuse (exit 2) two output options that name the same file (devices may repeat)."""
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if path is None or is_stream_target(path):
            continue
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            raise ConfigError(f"{seen[key]} and {option} name the same file {path!r}")
        seen[key] = option


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
    encoding = None if "b" in mode else "utf-8"
    if is_stream_target(path):  # a device or pipe: write through, never rename over it
        fd = _descriptor_of(path)
        if fd is not None:  # /dev/stdout: through the process's own descriptor and offset
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    stream.flush()
            handle = os.fdopen(os.dup(fd), mode, encoding=encoding)
        else:
            handle = open(path, mode.replace("w", "a"), encoding=encoding)  # noqa: SIM115
        with handle:
            yield handle
        return
    real = os.path.realpath(path)  # a symlink is followed: its target is replaced
    folder = os.path.dirname(real)
    fd, tmp = tempfile.mkstemp(prefix=".tdcheck-", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); a report gets the usual umask-based mode.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, real)
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
    """A temp file name beside ``path``'s target for a library that writes by name (Keras'
    ``model.save``); moved onto the target when the block succeeds, removed otherwise.

    A symbolic link is followed (the link stays, its target is replaced; a dangling link
    creates its target). Never renames over a folder, device or other non-regular file.
    What the library puts in the temp folder meanwhile is removed (:func:`scratch_tempdir`).
    A failed write (a full disk) is :class:`EnvironmentProblem` (exit 3) naming ``path``.
    """
    real = os.path.realpath(path)
    if os.path.lexists(real) and not os.path.isfile(real):
        raise ConfigError(f"{path!r} exists and is not a regular file; refusing to replace it")
    folder = os.path.dirname(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tdcheck-", suffix=suffix, dir=folder)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path!r} ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        with scratch_tempdir():
            yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, real)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise EnvironmentProblem(f"cannot write {path!r} ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def scratch_tempdir() -> Iterator[str]:
    """Point :mod:`tempfile`'s default folder at a fresh private one for the block, then
    remove it with everything in it: a library's temp files (Keras saves a model's assets
    through ``tempfile.mkdtemp()``) cannot be left behind, even when the block fails."""
    import shutil

    scratch = tempfile.mkdtemp(prefix="tdcheck-scratch-")
    previous = tempfile.tempdir
    tempfile.tempdir = scratch
    try:
        yield scratch
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(scratch, ignore_errors=True)


def atomic_write_text(path: str, text: str) -> None:
    """Write text to ``path`` all at once or not at all (UTF-8, whatever the locale)."""
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
