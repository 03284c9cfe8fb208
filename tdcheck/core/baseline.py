"""Baselines: an ``--save-arrays`` archive from another machine, backend or Keras, to judge
a run against (``tdcheck compare ... --baseline base.npz``).

The archive records where it came from: ``meta/report.json`` (UTF-8 JSON in a ``uint8``
array, written by :func:`tdcheck.commands.compare.archive`) holds the report with its
configuration and environment, so the archive is read with ``allow_pickle=False`` like every
array in it. A baseline is refused (exit 2) when the
configuration that shapes the numbers differs (the keys are named) or the input differs.

>>> decode_json(encode_json({"a": 1}))
{'a': 1}
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.inputs import read_npy_header
from tdcheck.errors import ConfigError

META_KEY = "meta/report.json"
#: Config keys that shape the numbers; they must agree with the baseline's.
MODEL_KEYS = (
    "features", "hidden", "units", "seq", "batch", "rnn", "initializer", "bias_initializer",
    "activation", "weights", "seed", "dtype", "lengths",
)  # fmt: skip
#: Compared too when both runs trained.
TRAINING_KEYS = ("train_steps", "optimizer", "learning_rate")
MAX_MEMBERS = 10_000


@dataclass
class Baseline:
    path: str
    arrays: dict[str, np.ndarray]
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)


def encode_json(value: Any) -> np.ndarray:
    """JSON as a ``uint8`` array (storable without pickling)."""
    return np.frombuffer(json.dumps(value, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def decode_json(array: np.ndarray) -> Any:
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))


def load(path: str, max_bytes: int = 4 * 1024**3) -> Baseline:
    """Read a baseline archive safely (no pickles, size and member count capped)."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ConfigError(f"--baseline: cannot read {path!r} ({exc.strerror})") from None
    if size > max_bytes:
        raise ConfigError(f"--baseline: {path!r} is {size} bytes, over the {max_bytes} limit")
    arrays = _read_arrays(path, max_bytes)
    if META_KEY not in arrays:
        raise ConfigError(
            f"--baseline: {path!r} has no {META_KEY} (write it with tdcheck compare --save-arrays)"
        )
    try:
        meta = decode_json(arrays.pop(META_KEY))
        report = meta["report"]
        config, environment = report["config"], report["environment"]
        original = meta.get("original_dtypes") or {}
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"--baseline: {path!r} has an unreadable {META_KEY} ({exc})") from None
    if not all(isinstance(part, dict) for part in (config, environment, original)):
        raise ConfigError(f"--baseline: {path!r} has a malformed {META_KEY}")
    for key, dtype in original.items():  # bfloat16 was stored as float32, exactly
        if key in arrays and dtype == "bfloat16":
            import ml_dtypes

            arrays[key] = arrays[key].astype(ml_dtypes.bfloat16)
    check_weights(path, arrays)
    return Baseline(path, arrays, config, environment)


def check_weights(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Refuse a baseline whose initial weights hold NaN or infinity (exit 2): the run would
    start from them, every output would be NaN, and the variants would be blamed for it."""
    for key, array in arrays.items():
        if not key.startswith("weights/"):
            continue
        values = np.asarray(array, np.float64)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise ConfigError(
                f"--baseline: {path!r} is broken: its {key} holds {bad} NaN or infinite "
                f"value(s) of {values.size}; a run cannot start from these weights"
            )


def _read_arrays(path: str, max_bytes: int) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the archive, each header checked before anything is allocated.

    NumPy's own ``np.load`` would allocate whatever a member's header claims and inflate a
    compressed member whole, so the archive's uncompressed total and each member's claimed
    size are capped at ``max_bytes`` (``--max-memory``) and must match what the member holds.
    """
    from numpy.lib import format as npy_format

    def refuse(why: str) -> ConfigError:
        return ConfigError(
            f"--baseline: {path!r} is not an archive written by --save-arrays ({why})"
        )

    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if len(infos) > MAX_MEMBERS:
                raise ConfigError(f"--baseline: {path!r} holds over {MAX_MEMBERS} arrays")
            total = sum(info.file_size for info in infos)
            if total > max_bytes:
                raise ConfigError(
                    f"--baseline: {path!r} holds {total:,} bytes uncompressed, over the "
                    f"{max_bytes:,} limit (--max-memory)"
                )
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise refuse(f"member {info.filename!r} is not a .npy array")
                with archive.open(info) as member:
                    raw = member.read(info.file_size)
                handle = io.BytesIO(raw)
                try:
                    shape, dtype = read_npy_header(handle)
                except ValueError as exc:
                    raise refuse(f"member {info.filename!r}: {exc}") from None
                if dtype.hasobject or dtype.kind not in "biufc":
                    raise refuse(f"member {info.filename!r} holds dtype {dtype}, not numbers")
                claimed = math.prod(shape) * dtype.itemsize
                held = len(raw) - handle.tell()
                if claimed != held:
                    raise refuse(
                        f"member {info.filename!r} claims shape {tuple(shape)} of {dtype} "
                        f"({claimed:,} bytes) but holds {held:,}"
                    )
                handle.seek(0)
                arrays[info.filename[: -len(".npy")]] = npy_format.read_array(
                    handle, allow_pickle=False
                )
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(f"--baseline: cannot read {path!r} ({exc.strerror or exc})") from None
    except (ValueError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise refuse(str(exc)) from None
    return arrays


def differing_keys(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key (baseline vs this run)`` for each key that shapes the numbers and differs.

    >>> differing_keys({"hidden": 8, "seed": 0}, {"hidden": 5, "seed": 0})
    ['hidden (8 vs 5)']
    """
    keys = list(MODEL_KEYS)
    if saved.get("train_steps") and current.get("train_steps"):
        keys += TRAINING_KEYS
    out = []
    for key in keys:
        a, b = _norm(saved.get(key)), _norm(current.get(key))
        if a != b:
            out.append(f"{key} ({_show(saved.get(key))} vs {_show(current.get(key))})")
    return out


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def check_matches(base: Baseline, cfg: Any, x: np.ndarray) -> None:
    """Refuse (exit 2) a baseline made from another configuration or another input."""
    differ = differing_keys(base.config, cfg.to_dict())
    if differ:
        raise ConfigError(
            f"--baseline: {base.path!r} was made with another configuration: " + "; ".join(differ)
        )
    saved = base.arrays.get("input")
    if saved is None:
        raise ConfigError(f"--baseline: {base.path!r} holds no input array")
    floating = saved.dtype.kind == "f" or saved.dtype.name == "bfloat16"  # ml_dtypes: kind V
    ours = x.astype(saved.dtype) if floating else x
    if saved.shape != ours.shape:
        raise ConfigError(
            f"--baseline: {base.path!r} was made from another input (shape {saved.shape} "
            f"vs {ours.shape})"
        )
    if not np.array_equal(saved, ours, equal_nan=True):
        same = (saved == ours) | (np.isnan(saved) & np.isnan(ours))
        count = int(np.count_nonzero(~same))
        raise ConfigError(
            f"--baseline: {base.path!r} was made from another input (its values differ: "
            f"{count} of {saved.size} elements)"
        )


def describe(environment: dict[str, Any]) -> str:
    """Where a baseline came from, in a few words."""
    from tdcheck.core.backends import framework_text

    if not environment:
        return "environment not recorded"
    device = environment.get("device", "?")
    return f"{framework_text(environment)} on {device}"
