"""Argument checks for the Python API (:mod:`tdcheck`): a wrong type is a :class:`TypeError`
naming the argument and what it takes, a wrong value a :class:`ValueError`; never an
AttributeError from deep inside, and never a descriptor taken for a path (``scan(0)`` would
otherwise read and close the caller's stdin).

Nothing heavy is imported: the checks run before TensorFlow loads.

>>> check_path("scan", "path", 0)
Traceback (most recent call last):
...
TypeError: scan(): path must be a file path (str or os.PathLike), not int
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

from tdcheck.core.config import CompareConfig

#: Python types each annotation of :class:`CompareConfig` accepts (bool is never an int).
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "float": (int, float),
    "bool": (bool,),
    "tuple": (tuple, list, str),
}


def _accepted(annotation: str) -> tuple[tuple[type, ...], bool]:
    """``("int | None")`` -> ``((int,), True)``: the types and whether None is allowed."""
    parts = [part.strip() for part in annotation.split("|")]
    types: tuple[type, ...] = ()
    for part in parts:
        types += _ACCEPTS.get(part.split("[")[0], ())
    return types, "None" in parts


def _type_name(value: Any) -> str:
    return type(value).__name__


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def check_compare_options(config: Any, options: dict[str, Any]) -> None:
    """``compare(config, **options)``: ``config`` a :class:`CompareConfig` or None, every
    option a field of it, of the field's type (``initializer=0.1`` is a TypeError)."""
    if config is not None and not isinstance(config, CompareConfig):
        raise TypeError(f"compare(): config must be a CompareConfig or None, not "
                        f"{_type_name(config)}")  # fmt: skip
    fields = {f.name: f for f in dataclasses.fields(CompareConfig)}
    for name, value in options.items():
        if name not in fields:
            raise TypeError(f"compare(): unknown option {name!r}")
        types, optional = _accepted(str(fields[name].type))
        if name == "max_memory":  # "4G" as on the command line
            types += (str,)
        if value is None and optional:
            continue
        if types and not _fits(value, types):
            wanted = " or ".join(t.__name__ for t in types) + (" or None" if optional else "")
            raise TypeError(f"compare(): {name} must be {wanted}, not {_type_name(value)} "
                            f"({value!r})")  # fmt: skip


def check_path(function: str, name: str, value: Any, *, optional: bool = False) -> None:
    """A file path: str or os.PathLike (not bytes, not an int file descriptor)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{function}(): {name} must be a file path (str or os.PathLike), not "
                        f"{_type_name(value)}")  # fmt: skip
    if not os.fspath(value):
        raise ValueError(f"{function}(): {name} is an empty path")


def check_model(function: str, name: str, value: Any) -> None:
    """A Keras model object, or the path of a saved model."""
    if isinstance(value, (str, os.PathLike)):
        check_path(function, name, value)
        return
    if not (hasattr(value, "layers") and callable(value)):  # any Keras model, subclassed too
        raise TypeError(f"{function}(): {name} must be a Keras model or the path of a saved "
                        f"model (.keras, .h5), not {_type_name(value)}")  # fmt: skip


def check_inputs(function: str, value: Any) -> None:
    """``inputs``: None, a path, an array, or a list of paths/arrays/lists of arrays."""
    if value is None or isinstance(value, (str, os.PathLike)) or _is_array(value):
        return
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{function}(): inputs must be a path, an array, or a list of them, "
                        f"not {_type_name(value)}")  # fmt: skip
    for i, item in enumerate(value):
        if isinstance(item, (str, os.PathLike)) or _is_array(item):
            continue
        if isinstance(item, (list, tuple)) and all(_is_array(x) for x in item):
            continue
        raise TypeError(f"{function}(): inputs[{i}] must be a path, an array or a list of "
                        f"arrays, not {_type_name(item)}")  # fmt: skip


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


#: The keyword options of compare_models / assert_equivalent / rewrite and their types.
MODEL_OPTIONS: dict[str, tuple[tuple[type, ...], bool]] = {
    "checks": ((int,), False), "batch": ((int,), False), "seed": ((int,), False),
    # atol/rtol: one value, or {output name: value} (per-output tolerances)
    "atol": ((int, float, dict), True), "rtol": ((int, float, dict), True),
    "unsafe": ((bool,), False), "force": ((bool,), False), "dry_run": ((bool,), False),
    "inference_only": ((bool,), False), "timing": ((bool,), False),
    "equal_nan": ((bool,), False), "keep_arrays": ((bool,), False),
    "check_export": ((bool,), False), "backend": ((str,), True),
}  # fmt: skip


def check_model_options(function: str, options: dict[str, Any]) -> None:
    """Types of the keyword options; ``seq`` a whole number or a list of them (>= 1)."""
    for name, value in options.items():
        if name == "seq":
            seq = [value] if isinstance(value, int) and not isinstance(value, bool) else value
            if (
                not isinstance(seq, Iterable)
                or isinstance(seq, (str, bytes))
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seq)
            ):
                raise TypeError(f"{function}(): seq must be a list of whole numbers, not "
                                f"{value!r}")  # fmt: skip
            continue
        if name not in MODEL_OPTIONS:
            continue  # the function itself names an unknown keyword
        types, optional = MODEL_OPTIONS[name]
        if value is None and optional:
            continue
        if not _fits(value, types):
            wanted = " or ".join(t.__name__ for t in types) + (" or None" if optional else "")
            raise TypeError(f"{function}(): {name} must be {wanted}, not {_type_name(value)}")
