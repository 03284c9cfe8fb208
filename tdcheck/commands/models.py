"""The Python API behind ``tdcheck models``: are two saved models the same computation?

Both models get the same inputs: random ones shaped from the first model's input specs
(unknown sizes from ``seq``/``batch``, several sequence lengths) and any the user gives.
Outputs are judged by :mod:`tdcheck.core.judge` (the judge ``compare`` uses; the tolerance
rule with per-dtype default tolerances). The result's truth value is the verdict.

>>> import tdcheck                                                  # doctest: +SKIP
>>> result = tdcheck.compare_models("before.keras", "after.keras")  # doctest: +SKIP
>>> bool(result), result.exit_code                                  # doctest: +SKIP
(True, 0)
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.inputs import check_input_values, read_npy_header
from tdcheck.core.judge import Tolerance, judge_outputs, raised_stats, tolerance_for
from tdcheck.core.result import SCHEMA_VERSION, Check, to_jsonable, verdict_text
from tdcheck.errors import EXIT_FAIL, EXIT_PASS, ConfigError

DEFAULT_SEQ = (5, 7)
DEFAULT_BATCH = 2
DEFAULT_CHECKS = 5
MAX_INPUT_ELEMENTS = 50_000_000  # refuse absurd random inputs before allocating

Spec = tuple[str, tuple[int | None, ...], str]
InputSet = list[np.ndarray]


@dataclass
class ModelsResult:
    """Two models compared: parameters by layer and outputs on the same inputs."""

    a: dict[str, Any]
    b: dict[str, Any]
    params: list[dict[str, Any]]
    comparisons: list[Check]
    tolerance: Tolerance
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def verdict(self) -> str:
        return verdict_text(self.comparisons, self.tolerance, "the models are")

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "command": "models",
                "passed": self.passed,
                "exit_code": self.exit_code,
                "verdict": self.verdict(),
                "a": self.a,
                "b": self.b,
                "params": self.params,
                "tolerance": self.tolerance.to_dict(),
                "comparisons": [c.to_dict() for c in self.comparisons],
                "notes": self.notes,
            }
        )


# -- inputs -------------------------------------------------------------------------------


def random_inputs(
    specs: Sequence[Spec], *, batch: int, seq: int, seed: int, mask_value: float | None = None
) -> InputSet:
    """One input set: standard normal values (small integers for integer inputs), unknown
    sizes filled with ``batch`` (axis 0) and ``seq`` (every other axis).

    With ``mask_value`` (the model has a Masking layer), the last timestep of the first
    row is set to it, so the masked path is exercised too.
    """
    rng = np.random.default_rng(seed)
    xs = []
    for _, shape, dtype in specs:
        full = tuple((batch if i == 0 else seq) if d is None else d for i, d in enumerate(shape))
        if int(np.prod(full, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
            raise ConfigError(f"an input of shape {full} is too large to generate")
        kind = np.dtype(dtype).kind if dtype != "bfloat16" else "f"
        if kind in "iu":
            x = rng.integers(0, 2, size=full).astype(dtype)
        elif kind == "b":
            x = rng.integers(0, 2, size=full).astype(bool)
        else:
            x = rng.standard_normal(full).astype(np.float32 if dtype == "bfloat16" else dtype)
        if mask_value is not None and kind == "f" and len(full) >= 3 and full[1] > 1:
            x[0, -1] = mask_value
        xs.append(x)
    return xs


def random_sets(
    specs: Sequence[Spec], *, checks: int, seq: Sequence[int], batch: int, seed: int,
    mask_value: float | None = None,
) -> list[tuple[str, InputSet]]:  # fmt: skip
    """``checks`` labelled input sets, cycling through the sequence lengths."""
    sets = []
    for i in range(checks):
        length = seq[i % len(seq)]
        xs = random_inputs(specs, batch=batch, seq=length, seed=seed + i, mask_value=mask_value)
        sets.append((f"#{i + 1} {_shape_label(xs)}", xs))
    return sets


def _shape_label(xs: InputSet) -> str:
    return ",".join("x".join(str(d) for d in x.shape) for x in xs)


def load_inputs(paths: Sequence[str], specs: Sequence[Spec]) -> list[tuple[str, InputSet]]:
    """User inputs: a ``.npy`` (one-input models) or a ``.npz`` whose arrays are named after
    the inputs (or ``arr_0``, ``arr_1``... in order). Never unpickled."""
    sets = []
    for path in paths:
        check_array_file(path)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ConfigError(f"--input {path}: cannot read it as .npy/.npz ({exc})") from None
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                try:
                    arrays = _npz_inputs(data, specs, path)
                except (OSError, ValueError, EOFError) as exc:
                    raise ConfigError(f"--input {path}: cannot read its arrays ({exc})") from None
        else:
            arrays = [np.asarray(data)]
        check_shapes(f"--input {path}", arrays, specs)
        sets.append((f"input {os.path.basename(path)}", arrays))
    return sets


def _check_header(handle: Any, what: str) -> None:
    """Refuse an ``.npy`` stream whose header names a non-numeric dtype or more than
    :data:`MAX_INPUT_ELEMENTS` elements, before numpy allocates anything."""
    try:
        shape, dtype = read_npy_header(handle)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{what}: cannot read it as .npy/.npz ({exc})") from None
    if dtype.kind not in "fiub":
        raise ConfigError(f"{what}: holds {dtype} values, not numbers a model can take")
    if int(np.prod(shape, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
        raise ConfigError(
            f"{what}: an array of shape {tuple(shape)} is more than the "
            f"{MAX_INPUT_ELEMENTS:,} elements tdcheck loads"
        )


def check_array_file(path: str) -> None:
    """Check every array header in an ``.npy``/``.npz`` file (see :func:`_check_header`)."""
    what = f"--input {path}"
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
            handle.seek(0)
            if magic != b"PK\x03\x04":
                _check_header(handle, what)
                return
            with zipfile.ZipFile(handle) as archive:
                for info in archive.infolist():
                    with archive.open(info) as member:
                        _check_header(member, f"{what} ({info.filename})")
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, RuntimeError,
            NotImplementedError) as exc:  # fmt: skip
        raise ConfigError(f"{what}: cannot read it as .npy/.npz ({exc})") from None


def check_shapes(what: str, arrays: Sequence[np.ndarray], specs: Sequence[Spec]) -> None:
    """One array per model input, each numeric, not empty, of the input's rank and known
    sizes."""
    if len(arrays) != len(specs):
        raise ConfigError(
            f"{what}: holds {len(arrays)} array(s), the model takes {len(specs)} "
            "input(s); use an .npz with one array per input name"
        )
    for x, (name, shape, dtype) in zip(arrays, specs, strict=True):
        if x.dtype.kind not in "fiub":
            raise ConfigError(
                f"{what}: array for {name!r} holds {x.dtype} values, not numbers a model can take"
            )
        if x.size == 0:
            raise ConfigError(f"{what}: array for {name!r} has shape {x.shape}: no values")
        if x.ndim != len(shape) or any(
            d is not None and d != s for d, s in zip(shape, x.shape, strict=True)
        ):
            raise ConfigError(
                f"{what}: array for {name!r} has shape {x.shape}, the model expects {tuple(shape)}"
            )
        check_input_values(f"{what}: array for {name!r}", x, dtype)


def _npz_inputs(data: Any, specs: Sequence[Spec], path: str) -> list[np.ndarray]:
    names = list(data.files)
    wanted = [name for name, _, _ in specs]
    if all(name in names for name in wanted):
        return [np.asarray(data[name]) for name in wanted]
    ordered = [f"arr_{i}" for i in range(len(names))]
    if sorted(names) == sorted(ordered):
        return [np.asarray(data[name]) for name in ordered]
    raise ConfigError(
        f"--input {path}: its arrays {names} match neither the input names {wanted} "
        "nor arr_0, arr_1, ..."
    )


# -- comparing ----------------------------------------------------------------------------


def output_dtype(model: Any) -> str:
    """The dtype a model's outputs are judged in (its first output's)."""
    return str(model.outputs[0].dtype) if model.outputs else "float32"


def reference_outputs(model: Any, xs: InputSet, label: str, what: str) -> list[np.ndarray]:
    """The reference model's outputs on ``xs``; a reference that raises is a usage error
    (exit 2, one line): there is nothing to check the other model against."""
    from tdcheck.engines import keras_rewrite as kr

    try:
        return kr.call(model, xs)
    except kr.CallFailed as exc:
        raise ConfigError(
            f"{what} raises when called on input {label} ({exc}); nothing can be checked against it"
        ) from None


def judged_call(
    label: str, names: Sequence[str], model: Any, xs: InputSet,
    expected: Sequence[np.ndarray], tolerance: Tolerance,
) -> list[Check]:  # fmt: skip
    """``model`` called on ``xs`` and judged against ``expected``; a model that raises
    fails every output of the check (with the error as the note), it does not crash."""
    from tdcheck.engines import keras_rewrite as kr

    try:
        actual = kr.call(model, xs)
    except kr.CallFailed as exc:
        return [Check(label, name, raised_stats(f"raised {exc}", want, tolerance))
                for name, want in zip(names, expected, strict=True)]  # fmt: skip
    return judge_outputs(label, names, actual, expected, tolerance)


def describe(model: Any, path: str | None) -> dict[str, Any]:
    from tdcheck.engines import keras_rewrite as kr

    return {
        "path": path or model.name,
        "name": model.name,
        "class": type(model).__name__,
        "params": kr.count_params(model),
        "inputs": [{"name": n, "shape": list(s), "dtype": d} for n, s, d in kr.input_specs(model)],
        "outputs": [
            {
                "name": n,
                "shape": [None if d is None else int(d) for d in t.shape],
                "dtype": str(t.dtype),
            }
            for n, t in zip(kr.output_names(model), model.outputs, strict=True)
        ],
        "time_distributed": kr.count_time_distributed(model),
    }


def params_by_layer(a: Any, b: Any) -> list[dict[str, Any]]:
    from tdcheck.engines import keras_rewrite as kr

    rows_a = {name: (kind, n) for name, kind, n in kr.layer_params(a)}
    rows_b = {name: (kind, n) for name, kind, n in kr.layer_params(b)}
    names = list(rows_a) + [n for n in rows_b if n not in rows_a]
    rows = []
    for name in names:
        ka, na = rows_a.get(name, (None, None))
        kb, nb = rows_b.get(name, (None, None))
        rows.append({"layer": name, "class_a": ka, "class_b": kb, "params_a": na,
                     "params_b": nb, "equal": na == nb})  # fmt: skip
    return rows


def check_same_inputs(a: Any, b: Any) -> None:
    from tdcheck.engines import keras_rewrite as kr

    sa = [(s, d) for _, s, d in kr.input_specs(a)]
    sb = [(s, d) for _, s, d in kr.input_specs(b)]
    if len(sa) != len(sb) or any(
        len(x[0]) != len(y[0]) or any(p is not None and q is not None and p != q
                                      for p, q in zip(x[0], y[0], strict=True))
        for x, y in zip(sa, sb, strict=True)
    ):  # fmt: skip
        raise ConfigError(f"the models take different inputs: {sa} vs {sb}")
    if [d for _, d in sa] != [d for _, d in sb]:
        raise ConfigError(
            "the models take inputs of different dtypes: "
            + ", ".join(f"{x} vs {y}" for (_, x), (_, y) in zip(sa, sb, strict=True) if x != y)
            + "; the same input cannot be fed to both as it is"
        )
    if len(a.outputs) != len(b.outputs):
        raise ConfigError(
            f"the models give different numbers of outputs: {len(a.outputs)} vs {len(b.outputs)}"
        )


def input_sets(
    model: Any, inputs: Any, *, checks: int, seq: Sequence[int], batch: int, seed: int
) -> list[tuple[str, InputSet]]:
    """Random sets plus the user's (paths, or arrays / lists of arrays from Python)."""
    from tdcheck.engines import keras_rewrite as kr

    if checks < 0 or batch < 1 or not seq or any(s < 1 for s in seq):
        raise ConfigError("checks must be >= 0, batch and every sequence length >= 1")
    specs = kr.input_specs(model)
    sets = random_sets(specs, checks=checks, seq=seq, batch=batch, seed=seed,
                       mask_value=kr.mask_value(model))  # fmt: skip
    items: list[Any] = []
    if inputs is not None:
        single = isinstance(inputs, (str, os.PathLike, np.ndarray))
        items = [inputs] if single else list(inputs)
    paths = [os.fspath(i) for i in items if isinstance(i, (str, os.PathLike))]
    sets += load_inputs(paths, specs)
    arrays = [i for i in items if not isinstance(i, (str, os.PathLike))]
    for n, item in enumerate(arrays):
        xs = [np.asarray(item)] if isinstance(item, np.ndarray) else [np.asarray(x) for x in item]
        check_shapes(f"inputs[{n}]", xs, specs)
        sets.append((f"given #{n + 1}", xs))
    if not sets:
        raise ConfigError("no inputs to compare on: give --checks >= 1 or --input")
    return sets


def _resolve(model: Any, unsafe: bool) -> tuple[Any, str | None]:
    from tdcheck.engines import keras_rewrite as kr

    if kr.is_keras_model(model):
        return model, None
    path = os.fspath(model)
    from tdcheck.core.model_file import read_model_file

    read_model_file(path)  # a clear one-line error for files that are not models at all
    return kr.load_model(path, unsafe=unsafe), path


def compare_models(
    a: Any, b: Any, inputs: Any = None, *, checks: int = DEFAULT_CHECKS,
    seq: Sequence[int] = DEFAULT_SEQ, batch: int = DEFAULT_BATCH, atol: float | None = None,
    rtol: float | None = None, seed: int = 0, unsafe: bool = False,
) -> ModelsResult:  # fmt: skip
    """Compare model ``b`` with the reference ``a`` (Keras models or saved-model paths).

    ``inputs``: ``.npy``/``.npz`` paths, arrays, or lists of arrays (one per model input),
    judged besides ``checks`` random input sets.
    """
    from tdcheck.engines import keras_rewrite as kr

    model_a, path_a = _resolve(a, unsafe)
    model_b, path_b = _resolve(b, unsafe)
    check_same_inputs(model_a, model_b)
    sets = input_sets(model_a, inputs, checks=checks, seq=seq, batch=batch, seed=seed)
    tolerance = tolerance_for(output_dtype(model_a), atol, rtol)
    names = kr.output_names(model_a)
    comparisons: list[Check] = []
    for label, xs in sets:
        expected = reference_outputs(model_a, xs, label, f"A ({path_a or model_a.name})")
        comparisons += judged_call(label, names, model_b, xs, expected, tolerance)
    return ModelsResult(
        a=describe(model_a, path_a),
        b=describe(model_b, path_b),
        params=params_by_layer(model_a, model_b),
        comparisons=comparisons,
        tolerance=tolerance,
    )


def assertion_message(result: ModelsResult) -> str:
    """A torch.testing-style message: what mismatched, how much, where, and the tolerance."""
    lines = ["Models are not equivalent!"]
    for c in result.comparisons:
        if c.passed:
            continue
        s = c.stats
        lines.append("")
        lines.append(f"{c.check}, output {c.output!r}:")
        if s.note:
            lines.append(f"  {s.note}")
            continue
        lines += [
            f"  Mismatched elements: {s.mismatched} / {s.total} ({s.mismatch_percent:.1f}%)",
            f"  Greatest absolute difference: {s.max_abs_diff!r} at index "
            f"{tuple(s.worst_index or ())} (up to {s.atol!r} allowed)",
            f"  Greatest relative difference: {s.max_rel_diff!r} (up to {s.rtol!r} allowed)",
        ]
    return "\n".join(lines)


def assert_equivalent(
    a: Any, b: Any, inputs: Any = None, *, atol: float | None = None,
    rtol: float | None = None, **options: Any,
) -> ModelsResult:  # fmt: skip
    """Raise :class:`AssertionError` unless ``b`` computes what ``a`` does (for pytest).

    >>> tdcheck.assert_equivalent(model, rewritten, x, atol=1e-6, rtol=0)  # doctest: +SKIP
    """
    result = compare_models(a, b, inputs, atol=atol, rtol=rtol, **options)
    if not result.passed:
        raise AssertionError(assertion_message(result))
    return result
