"""The Python API behind ``tdcheck compare``.

>>> import tdcheck                                     # doctest: +SKIP
>>> result = tdcheck.compare(hidden=5, seq=3)          # doctest: +SKIP
>>> bool(result), result.total_params                  # doctest: +SKIP
(True, 224)
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from tdcheck.core.config import CompareConfig
from tdcheck.core.inputs import load_npy, make_input, valid_positions
from tdcheck.core.result import CompareRun
from tdcheck.core.tolerances import compute_dtype, largest_finite, overflow_threshold
from tdcheck.errors import ConfigError

__all__ = ["GENERATORS", "META_KEY", "CompareRun", "archive", "check_input_range", "compare",
           "prepare", "valid_positions"]  # fmt: skip


#: How the generated arrays in an archive were drawn, so a third party can redraw them.
GENERATORS = {
    "input": "--input random: numpy.random.default_rng(seed).standard_normal((batch, seq, "
    "features)); --input ones: numpy.ones; then zeroed after each row's --lengths",
    "gradients/R": "numpy.random.default_rng([seed, 0x6772]).standard_normal((batch, seq, "
    "units)) * valid[..., None]; loss L = sum(R * y)",
    "trained/targets": "numpy.random.default_rng([seed, 0x7472]).standard_normal((batch, seq, "
    "units)); loss sum(valid * (y - T)^2) / (count(valid) * units)",
    "valid": "numpy.arange(seq)[None, :] < numpy.asarray(lengths)[:, None] (all True "
    "without --lengths)",
}
META_KEY = "meta/report.json"


def archive(result: CompareRun) -> dict[str, np.ndarray]:
    """The arrays of ``--save-arrays``: every judged array, under the keys each comparison's
    ``arrays`` field names, plus ``meta/report.json``.

    bfloat16 (and other types NumPy cannot name) are stored as float32, exactly (every
    bfloat16 is a float32), with the original dtype in ``original_dtypes``. The report, the
    configuration, the environment and :data:`GENERATORS` are JSON in a uint8 array, so
    ``np.load(path, allow_pickle=False)`` reads everything.
    """
    out: dict[str, np.ndarray] = {}
    original: dict[str, str] = {}
    for key, value in result.arrays.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            original[key] = array.dtype.name
            array = array.astype(np.float32)
        out[key] = array
    meta = {"report": result.to_dict(), "original_dtypes": original, "generators": GENERATORS}
    out[META_KEY] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    return out


def prepare(config: CompareConfig | None = None, **options: Any) -> tuple[CompareConfig, Any]:
    """Validate options, read the input and check memory; no TensorFlow yet.

    Returns the resolved config and the input array (float64, padded positions zeroed).
    """
    cfg = dataclasses.replace(config, **options) if config else CompareConfig(**options)
    cfg = cfg.validated()
    if cfg.input in ("ones", "random"):
        cfg = cfg.resolve_sizes(None)
        assert cfg.batch and cfg.seq and cfg.features
        cfg.check_lengths()
        cfg.check_memory()
        x = make_input(
            cfg.input, batch=cfg.batch, seq=cfg.seq, features=cfg.features, seed=cfg.seed
        )
    else:
        x = load_npy(cfg.input, max_bytes=cfg.max_memory)
        cfg = cfg.resolve_sizes(tuple(x.shape))
        cfg.check_lengths()
        cfg.check_memory()
    check_input_range(x, cfg.dtype)
    return cfg, x * valid_positions(cfg)[..., None]


def check_input_range(x: np.ndarray, dtype: str) -> None:
    """Refuse input values that round to infinity in the compute dtype (exit 2).

    An input of 1e300 in float32 (or 100000 in float16) would become inf, every output NaN,
    and nothing would be judged: say which values, and which dtype, instead.
    """
    limit = overflow_threshold(dtype)
    magnitude = np.abs(np.asarray(x, np.float64))
    over = magnitude >= limit
    if over.any():
        compute = compute_dtype(dtype)
        first = tuple(int(i) for i in np.argwhere(over)[0])
        raise ConfigError(
            f"--input: {int(over.sum())} value(s) do not fit {compute}, the compute dtype of "
            f"--dtype {dtype} (largest magnitude {magnitude.max():g}, first at "
            f"{list(first)}; {compute} holds up to {largest_finite(dtype):g}): they would "
            "become inf"
        )


def compare(config: CompareConfig | None = None, **options: Any) -> CompareRun:
    """Build the variants with the same weights, run them, and judge every pair.

    Accepts a :class:`CompareConfig` or its fields as keywords. Raises
    :class:`~tdcheck.errors.ConfigError` (bad input) or
    :class:`~tdcheck.errors.EnvironmentProblem` (e.g. ``device='gpu'`` without one).
    """
    cfg, x = prepare(config, **options)
    from tdcheck.commands.backends import run_compare

    return run_compare(cfg, x)
