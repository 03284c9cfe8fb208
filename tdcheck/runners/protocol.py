"""What travels between the parent and a worker process.

A request is a directory holding ``request.json`` (``{"engine": NAME, "config": {...}}`` or
``{"engine": NAME, "bench": PLAN}``), ``input.npy`` and optionally ``weights.npz``; the answer
is ``result.json`` (the report document) and ``arrays.npz`` in the same directory. Arrays are
read with ``allow_pickle=False``; nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from tdcheck.core.config import CompareConfig
from tdcheck.core.result import CompareRun, Comparison
from tdcheck.core.stats import ArrayStats

#: Arrays whose dtype NumPy cannot store without pickling travel as float32; the result
#: names them so the parent casts them back.
CAST_KEY = "float32_from"


def config_from_dict(doc: dict[str, Any]) -> CompareConfig:
    """A :class:`CompareConfig` from its :meth:`~CompareConfig.to_dict` (lists to tuples)."""
    names = {f.name for f in dataclasses.fields(CompareConfig)}
    values = {k: v for k, v in doc.items() if k in names}
    for key in ("variants", "lengths", "backends"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return CompareConfig(**values)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Save arrays without pickling; non-native dtypes (bfloat16) as float32.

    Returns ``{key: original dtype}`` of the arrays saved as float32.
    """
    cast: dict[str, str] = {}
    plain: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind not in "biufc":
            cast[key] = str(value.dtype)
            value = value.astype(np.float32)
        plain[key] = value
    np.savez(path, **plain)  # type: ignore[arg-type]
    return cast


def write_result(directory: Path, run: CompareRun) -> None:
    """A worker's answer to a compare request: ``result.json`` and ``arrays.npz``."""
    doc = run.to_dict()
    doc[CAST_KEY] = save_npz(directory / "arrays.npz", run.arrays)
    (directory / "result.json").write_text(json.dumps(doc), encoding="utf-8")


def read_result(directory: Path) -> CompareRun:
    """A :class:`CompareRun` from a worker's ``result.json`` and ``arrays.npz``."""
    doc = json.loads((directory / "result.json").read_text(encoding="utf-8"))
    with np.load(directory / "arrays.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key, dtype in doc.get(CAST_KEY, {}).items():
        arrays[key] = arrays[key].astype(_dtype(dtype))
    return CompareRun(
        config=doc["config"],
        environment=doc["environment"],
        layers=doc["layers"],
        total_params=doc["total_params"],
        comparisons=[comparison_from_dict(c) for c in doc["comparisons"]],
        notes=doc["notes"],
        training=doc["training"],
        power=doc.get("power"),
        arrays=arrays,
    )


def _dtype(name: str) -> Any:
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


def comparison_from_dict(doc: dict[str, Any]) -> Comparison:
    """The inverse of :meth:`Comparison.to_dict` (non-finite strings back to floats)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(ArrayStats):
        if f.name not in doc:
            continue
        value = doc[f.name]
        if isinstance(value, str) and value in ("nan", "inf", "-inf"):
            value = float(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    stats = ArrayStats(**values)
    keys = doc.get("arrays")
    return Comparison(
        doc["kind"], doc["a"], doc["b"], stats, doc.get("quantity", "output"),
        keys=tuple(keys) if keys else None,
    )  # fmt: skip


def read_request(directory: Path) -> dict[str, Any]:
    """``request.json`` of a request directory."""
    return dict(json.loads((directory / "request.json").read_text(encoding="utf-8")))


def read_input(directory: Path) -> np.ndarray:
    return np.load(directory / "input.npy", allow_pickle=False)


def read_weights(directory: Path) -> dict[str, np.ndarray] | None:
    """The initial weights a request carries, or None."""
    if not (directory / "weights.npz").exists():
        return None
    with np.load(directory / "weights.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
