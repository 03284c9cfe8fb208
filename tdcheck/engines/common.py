"""Helpers every engine uses, free of any framework import: quiet native logging, one-line
error texts, a debug switch. (They lived in :mod:`tdcheck.engines.tensorflow`, which re-exports
them; :mod:`tdcheck.engines.base` needs them without importing an engine.)"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

from tdcheck.errors import error_text  # noqa: F401  (re-exported for the engines)


def debug_enabled() -> bool:
    return os.environ.get("TDCHECK_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (native C++ logging) inside the block."""
    if debug_enabled():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence native logging and Python warnings (e.g. Keras on dropped masks)."""
    with quiet_native_stderr(), warnings.catch_warnings():
        if not debug_enabled():
            warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _without_pyplot() -> Iterator[None]:
    """Hide matplotlib while TensorFlow and Keras are imported.

    Keras imports ``matplotlib.pyplot`` at start-up (for an image-gallery helper that tdcheck
    never calls; it falls back to ``plt = None``), which costs about 0.7 s when matplotlib is
    installed. Afterwards matplotlib imports normally again.
    """
    if "matplotlib" in sys.modules:
        yield
        return
    sys.modules["matplotlib"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        if sys.modules.get("matplotlib") is None:
            del sys.modules["matplotlib"]
