"""The model's input: ones, standard-normal noise, or a user's ``.npy`` file.

User files are read with ``allow_pickle=False`` (never unpickled) and must hold a
finite, real, numeric 3-D array ``(batch, seq, features)``.

>>> make_input("ones", batch=1, seq=3, features=4, seed=0).shape
(1, 3, 4)
"""

from __future__ import annotations

import numpy as np

from tdcheck.errors import ConfigError


def load_npy(path: str) -> np.ndarray:
    """Load and check a user's input array; every problem is a :class:`ConfigError`."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise ConfigError(f"--input: cannot read {path!r} ({exc.strerror})") from None
    if magic[:4] == b"PK\x03\x04":
        raise ConfigError(f"--input: {path!r} is an .npz archive; give a single .npy array")
    if magic != b"\x93NUMPY":
        raise ConfigError(f"--input: {path!r} is not a .npy file (no NumPy header)")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ConfigError(
                f"--input: {path!r} holds Python objects; tdcheck never unpickles files"
            ) from None
        raise ConfigError(f"--input: {path!r} is not a readable .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ConfigError(f"--input: cannot read {path!r} as .npy ({exc})") from None
    if array.dtype.kind not in "fiub":
        raise ConfigError(
            f"--input: {path!r} holds dtype {array.dtype}; it must be a real numeric array"
        )
    if array.ndim != 3:
        raise ConfigError(
            f"--input: {path!r} has shape {array.shape}; it must be 3-D (batch, seq, features)"
        )
    if 0 in array.shape:
        raise ConfigError(f"--input: {path!r} has shape {array.shape}; no size may be 0")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ConfigError(f"--input: {path!r} holds {bad} NaN or infinite value(s)")
    return array


def make_input(kind: str, *, batch: int, seq: int, features: int, seed: int) -> np.ndarray:
    """``ones`` or ``random`` (standard normal from ``seed``), in float64."""
    if kind == "ones":
        return np.ones((batch, seq, features))
    if kind == "random":
        return np.random.default_rng(seed).standard_normal((batch, seq, features))
    raise ConfigError(f"--input: unknown input kind {kind!r}")
