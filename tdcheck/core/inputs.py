"""The model's input: ones, standard-normal noise, or a user's ``.npy`` file.

User files are read with ``allow_pickle=False`` (never unpickled) and must hold a
finite, real, numeric 3-D array ``(batch, seq, features)``.

>>> make_input("ones", batch=1, seq=3, features=4, seed=0).shape
(1, 3, 4)
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from tdcheck.core.config import format_bytes

if TYPE_CHECKING:
    from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError

#: The largest .npy header read (NumPy's own default limit).
MAX_HEADER_BYTES = 10_000


def read_npy_header(handle: Any) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` from the ``.npy`` header at ``handle``'s position; reads no data.

    Raises ValueError for an unsupported version or a malformed header (NumPy's message, or
    whatever NumPy's header parser raised, named), and for a header over
    :data:`MAX_HEADER_BYTES`.
    """
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(handle)
    reader = {
        (1, 0): npy_format.read_array_header_1_0,
        (2, 0): npy_format.read_array_header_2_0,
    }.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy version {version}")
    try:
        shape, _fortran, dtype = reader(handle, max_header_size=MAX_HEADER_BYTES)
    except (ValueError, OSError, EOFError):
        raise
    except Exception as exc:  # NumPy parses the header with Python's tokenizer: a damaged
        # header can raise tokenize.TokenError, SyntaxError, TypeError...
        raise ValueError(f"malformed .npy header ({type(exc).__name__}: {exc})") from None
    return tuple(shape), dtype


def check_npy_header(path: str, max_bytes: int | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the header of a ``.npy`` file and refuse it before any data is allocated.

    The shape times the item size must match the bytes the file holds (a header that claims
    more is refused, whatever it claims), and fit in ``max_bytes`` (``--max-memory``).
    Returns ``(shape, dtype)``.
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
            if magic[:4] == b"PK\x03\x04":
                raise ConfigError(f"--input: {path!r} is an .npz archive; give a single .npy array")
            if magic != b"\x93NUMPY":
                raise ConfigError(f"--input: {path!r} is not a .npy file (no NumPy header)")
            handle.seek(0)
            shape, dtype = read_npy_header(handle)
            data_bytes = os.fstat(handle.fileno()).st_size - handle.tell()
    except OSError as exc:
        raise ConfigError(f"--input: cannot read {path!r} ({exc.strerror or exc})") from None
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ConfigError(
                f"--input: {path!r} holds Python objects; tdcheck never unpickles files"
            ) from None
        raise ConfigError(f"--input: {path!r} has an unreadable .npy header ({exc})") from None
    if dtype.hasobject:
        raise ConfigError(f"--input: {path!r} holds Python objects; tdcheck never unpickles files")
    count = math.prod(shape)
    claimed = count * dtype.itemsize
    if claimed > data_bytes:
        raise ConfigError(
            f"--input: {path!r} claims shape {tuple(shape)} of {dtype} ({claimed:,} bytes) "
            f"but holds {data_bytes:,} bytes of data"
        )
    # The model sees the array in float64 too: count that, not only the file's bytes.
    need = count * max(dtype.itemsize, 8)
    if max_bytes is not None and need > max_bytes:
        raise ConfigError(
            f"--input: {path!r} has shape {tuple(shape)}: about {format_bytes(need)} in "
            f"memory, over the {format_bytes(max_bytes)} limit (--max-memory)"
        )
    return tuple(shape), dtype


def load_npy(path: str, max_bytes: int | None = None) -> np.ndarray:
    """Load and check a user's input array; every problem is a :class:`ConfigError`.

    The header is checked first (:func:`check_npy_header`): nothing is allocated for a file
    whose header claims more than it holds or more than ``max_bytes``.
    """
    check_npy_header(path, max_bytes)
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


def check_input_values(what: str, x: np.ndarray, dtype: str) -> None:
    """Refuse (exit 2) input a model of input dtype ``dtype`` cannot take as given, as
    ``compare`` does: NaN or infinity, or a value that rounds to infinity in ``dtype``
    (1e300 in float32). Such input makes every output NaN, and nothing would be judged."""
    from tdcheck.core.tolerances import COMPUTE_DTYPES, overflow_threshold

    values = np.asarray(x)
    if values.dtype.kind not in "fc" and values.dtype.name != "bfloat16":
        return
    values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        first = [int(i) for i in np.argwhere(bad)[0]]
        raise ConfigError(
            f"{what}: {int(bad.sum())} NaN or infinite value(s) (first at {first}); give "
            "finite input"
        )
    if dtype in COMPUTE_DTYPES:
        limit = overflow_threshold(dtype)
        over = np.abs(values) >= limit
        if over.any():
            first = [int(i) for i in np.argwhere(over)[0]]
            raise ConfigError(
                f"{what}: {int(over.sum())} value(s) do not fit the model's input dtype "
                f"{dtype} (largest magnitude {np.abs(values).max():g}, first at {first}): "
                "they would become inf"
            )


def valid_positions(cfg: CompareConfig) -> np.ndarray:
    """``(batch, seq)`` booleans: True where a timestep is within its row's length."""
    assert cfg.batch and cfg.seq
    if cfg.lengths is None:
        return np.ones((cfg.batch, cfg.seq), bool)
    return np.arange(cfg.seq)[None, :] < np.asarray(cfg.lengths)[:, None]
