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

import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.inputs import check_input_values, read_npy_header
from tdcheck.core.judge import (
    Tolerance,
    ToleranceValue,
    compare_weights,
    judge_outputs,
    raised_stats,
    tolerance_for_outputs,
)
from tdcheck.core.result import SCHEMA_VERSION, Check, fmt, to_jsonable, verdict_text
from tdcheck.errors import EXIT_FAIL, EXIT_PASS, ConfigError, EnvironmentProblem

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
    #: Same computation in float64: stored weights and float64 clones (docs/checks.md).
    same_computation: list[Check] = field(default_factory=list)
    #: The Keras backend both models ran on.
    backend: str = "tensorflow"
    #: ``--save-arrays``: inputs, both models' outputs and weights (see :func:`archive`).
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: The check label of each ``inputs/<i>/...`` index in :attr:`arrays`.
    check_labels: list[str] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return (
            bool(self.comparisons)
            and all(c.passed for c in self.comparisons)
            and all(c.passed for c in self.same_computation)
        )

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def verdict(self) -> str:
        text = verdict_text(self.comparisons, self.tolerance, "the models are")
        return same_computation_verdict(text, self.same_computation)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "command": "models",
                "passed": self.passed,
                "exit_code": self.exit_code,
                "verdict": self.verdict(),
                "backend": self.backend,
                "a": self.a,
                "b": self.b,
                "params": self.params,
                "tolerance": self.tolerance.to_dict(),
                "comparisons": [c.to_dict() for c in self.comparisons],
                "same_computation": [c.to_dict() for c in self.same_computation],
                "notes": self.notes,
                "check_labels": self.check_labels,
            }
        )

    @classmethod
    def from_dict(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> ModelsResult:
        """The result a worker process sent back (:meth:`to_dict` and the arrays)."""
        from tdcheck.runners.protocol import stats_from_dict

        tol = doc["tolerance"]
        per_output = {k: (v["atol"], v["rtol"]) for k, v in (tol.get("per_output") or {}).items()}

        def checks(docs: list[dict[str, Any]]) -> list[Check]:
            return [Check(c["check"], c["output"], stats_from_dict(c),
                          keys=tuple(c["arrays"]) if c.get("arrays") else None)
                    for c in docs]  # fmt: skip

        return cls(
            a=doc["a"], b=doc["b"], params=doc["params"], comparisons=checks(doc["comparisons"]),
            same_computation=checks(doc.get("same_computation") or []),
            tolerance=Tolerance(tol["atol"], tol["rtol"], tol["dtype"], tol["source"],
                                per_output or None),
            notes=list(doc["notes"]), backend=doc.get("backend", "tensorflow"), arrays=arrays,
            check_labels=list(doc.get("check_labels") or []),
        )  # fmt: skip


# -- arrays (--save-arrays) ---------------------------------------------------------------

META_KEY = "meta/report.json"


def _key_part(name: str) -> str:
    return name.replace("/", "_") or "_"


@dataclass
class ArrayLog:
    """The arrays of ``--save-arrays``, under stable keys: ``inputs/<i>/<input>``,
    ``models/a/outputs/<i>/<output>`` (the reference: A, or the original),
    ``models/b/outputs/<i>/<output>`` (B, or the rewritten model) and
    ``models/{a,b}/weights/<layer>/<j>``; ``<i>`` numbers the checks (their labels are in the
    report's ``check_labels``)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)

    def record(
        self, label: str, xs: Sequence[np.ndarray], names: Sequence[str],
        expected: Sequence[np.ndarray] | None, actual: Sequence[np.ndarray] | None,
        allowed: Sequence[np.ndarray] | None = None,
    ) -> dict[str, tuple[str, str]]:  # fmt: skip
        """Store one check's inputs and outputs; ``{output: (key of B's, key of A's)}``.
        A check judged by an element-wise allowance (rewrite's float64 shadow) stores it
        as ``models/allowed/<i>/<output>``: ``|b - a| <= allowed`` re-judges it."""
        i = len(self.labels)
        self.labels.append(label)
        for n, x in enumerate(xs):
            name = self.input_names[n] if n < len(self.input_names) else f"input_{n}"
            self.arrays[f"inputs/{i}/{_key_part(name)}"] = np.asarray(x)
        keys = {}
        for n, name in enumerate(names):
            key_a = f"models/a/outputs/{i}/{_key_part(name)}"
            key_b = f"models/b/outputs/{i}/{_key_part(name)}"
            if expected is not None:
                self.arrays[key_a] = np.asarray(expected[n])
            if actual is not None:
                self.arrays[key_b] = np.asarray(actual[n])
            if allowed is not None:
                self.arrays[f"models/allowed/{i}/{_key_part(name)}"] = np.asarray(allowed[n])
            keys[name] = (key_b, key_a)
        return keys

    def weights(self, side: str, weights: dict[str, list[np.ndarray]]) -> None:
        for layer, values in weights.items():
            for j, value in enumerate(values):
                self.arrays[f"models/{side}/weights/{_key_part(layer)}/{j}"] = value


def archive(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``.npz`` contents of ``--save-arrays`` for ``models``/``rewrite``: the arrays, and
    ``meta/report.json``, the report as JSON in a uint8 array (``np.load(path,
    allow_pickle=False)`` reads everything). bfloat16 (and other types NumPy cannot name) are
    stored as float32, exactly, their dtype in ``original_dtypes``. Each comparison's
    ``arrays`` names its two keys (B's, then the reference A's): re-judge with NumPy alone,
    ``|b - a| <= atol + rtol * |a|``."""
    out: dict[str, np.ndarray] = {}
    original: dict[str, str] = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            original[key] = array.dtype.name
            array = array.astype(np.float32)
        out[key] = array
    meta = {"report": doc, "original_dtypes": original,
            "rule": "|b - a| <= atol + rtol * |a| (a: the reference)"}  # fmt: skip
    out[META_KEY] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    return out


def same_computation_verdict(text: str, checks: Sequence[Check]) -> str:
    """The verdict of the output checks, with the float64 same-computation checks' word:
    a failure there makes a passing verdict ``NOT EQUIVALENT: different computations``."""
    if not checks:
        return text
    failed = [c for c in checks if not c.passed]
    if not failed:
        return f"{text}; the same computation in float64 ({len(checks)} checks)"
    worst = failed[0]
    why = worst.stats.note or f"{worst.check} {worst.output} margin {fmt(worst.stats.margin)}"
    if text.startswith("EQUIVALENT"):
        return f"NOT EQUIVALENT: {len(failed)} of {len(checks)} float64 checks failed; {why}"
    return f"{text}; float64: {why}"


# -- inputs -------------------------------------------------------------------------------


def random_inputs(
    specs: Sequence[Spec], *, batch: int, seq: int | Sequence[int], seed: int,
    mask_value: float | None = None,
) -> InputSet:  # fmt: skip
    """One input set: standard normal values (small integers for integer inputs), unknown
    sizes filled with ``batch`` (axis 0) and ``seq`` (every other axis; a sequence gives
    the k-th unknown axis of each input ``seq[k % len(seq)]``, so two unknown axes, the
    width and height of an image, get distinct sizes).

    With ``mask_value`` (the model has a Masking layer), the last timestep of the first
    row is set to it, so the masked path is exercised too.
    """
    rng = np.random.default_rng(seed)
    sizes = [seq] if isinstance(seq, int) else list(seq)
    xs = []
    for _, shape, dtype in specs:
        unknown = iter(range(len(shape)))
        full = tuple(
            (batch if i == 0 else sizes[next(unknown) % len(sizes)]) if d is None else d
            for i, d in enumerate(shape)
        )
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
        k = i % len(seq)
        sizes = [*seq[k:], *seq[:k]]  # each unknown axis goes through every length
        xs = random_inputs(specs, batch=batch, seq=sizes, seed=seed + i, mask_value=mask_value)
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
    expected: Sequence[np.ndarray], tolerance: Tolerance, *, equal_nan: bool = False,
    log: ArrayLog | None = None, allowed: Sequence[np.ndarray] | None = None,
) -> list[Check]:  # fmt: skip
    """``model`` called on ``xs`` and judged against ``expected`` (by ``allowed`` where
    given, see :func:`judged_outputs`); a model that raises fails every output of the check
    (with the error as the note), it does not crash."""
    from tdcheck.engines import keras_rewrite as kr

    try:
        actual = kr.call(model, xs)
    except kr.CallFailed as exc:
        keys = log.record(label, xs, names, expected, None) if log is not None else {}
        return [Check(label, name, raised_stats(f"raised {exc}", want, tolerance.for_output(name)),
                      keys=keys.get(name))
                for name, want in zip(names, expected, strict=True)]  # fmt: skip
    return judged_outputs(label, names, xs, actual, expected, tolerance, equal_nan=equal_nan,
                          log=log, allowed=allowed)  # fmt: skip


def judged_outputs(
    label: str, names: Sequence[str], xs: InputSet, actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray], tolerance: Tolerance, *, equal_nan: bool = False,
    log: ArrayLog | None = None, allowed: Sequence[np.ndarray] | None = None,
) -> list[Check]:  # fmt: skip
    """Judge one check's outputs (:func:`tdcheck.core.judge.judge_outputs`; ``allowed``:
    each output's element-wise allowance) and record its arrays in ``log``
    (``--save-arrays``)."""
    checks = judge_outputs(label, names, actual, expected, tolerance, equal_nan=equal_nan,
                           allowed=allowed)  # fmt: skip
    if log is not None:
        keys = log.record(label, xs, names, expected, actual, allowed)
        for check in checks:
            check.keys = keys[check.output]
    return checks


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


def params_by_layer(a: Any, b: Any, log: ArrayLog | None = None) -> list[dict[str, Any]]:
    """Each top-level layer of either model, matched by name (a rewritten layer keeps its
    TimeDistributed wrapper's name, and its weights are the wrapped layer's): classes,
    parameter counts and the weights compared array by array (``max_abs_diff``, bitwise).
    ``equal`` is true when the weights are bitwise identical."""
    from tdcheck.engines import keras_rewrite as kr

    rows_a = {name: (kind, n) for name, kind, n in kr.layer_params(a)}
    rows_b = {name: (kind, n) for name, kind, n in kr.layer_params(b)}
    weights_a, weights_b = kr.layer_weights(a), kr.layer_weights(b)
    if log is not None:
        log.weights("a", weights_a)
        log.weights("b", weights_b)
    names = list(rows_a) + [n for n in rows_b if n not in rows_a]
    rows = []
    for name in names:
        ka, na = rows_a.get(name, (None, None))
        kb, nb = rows_b.get(name, (None, None))
        weights = compare_weights(weights_a.get(name), weights_b.get(name))
        rows.append({"layer": name, "class_a": ka, "class_b": kb, "params_a": na,
                     "params_b": nb, **weights,
                     "equal": na == nb and weights["bitwise_equal"]})  # fmt: skip
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


def choose_backend(backend: str | None) -> tuple[str, str | None]:
    """Where models run: ``(backend, None)`` in this process, or ``(backend, owner)`` when
    this process already runs Keras on ``owner`` (a worker process must run them)."""
    from tdcheck.core.backends import BACKENDS, default_backend
    from tdcheck.engines.base import keras_owner

    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    owner = keras_owner()
    name = backend or owner or default_backend()
    if owner is None or owner == name:
        return name, None
    return name, owner


def use_here(backend: str) -> None:
    """Load Keras for ``backend`` in this process (exit 3 when it is not installed)."""
    from tdcheck.engines import keras_rewrite as kr

    kr.use_backend(backend)


def _paths_only(*values: Any) -> bool:
    def is_path(v: Any) -> bool:
        return isinstance(v, (str, os.PathLike))

    for value in values:
        if value is None or is_path(value):
            continue
        if isinstance(value, (list, tuple)) and all(is_path(v) for v in value):
            continue
        return False
    return True


def compare_models(
    a: Any, b: Any, inputs: Any = None, *, checks: int = DEFAULT_CHECKS,
    seq: Sequence[int] = DEFAULT_SEQ, batch: int = DEFAULT_BATCH, atol: ToleranceValue = None,
    rtol: ToleranceValue = None, seed: int = 0, unsafe: bool = False, equal_nan: bool = False,
    backend: str | None = None, keep_arrays: bool = False,
) -> ModelsResult:  # fmt: skip
    """Compare model ``b`` with the reference ``a`` (Keras models or saved-model paths).

    ``inputs``: ``.npy``/``.npz`` paths, arrays, or lists of arrays (one per model input),
    judged besides ``checks`` random input sets. ``atol``/``rtol``: a number, or
    ``{output name: number}`` (``"*"`` for the other outputs). ``equal_nan``: NaNs in the same
    place agree. ``backend``: the Keras backend (default: the one this process runs, else
    ``$KERAS_BACKEND``, else tensorflow); when this process already runs Keras on another,
    saved models run in a worker process on ``backend`` (models in memory cannot: exit 3).
    ``keep_arrays``: fill ``result.arrays`` (inputs, outputs, weights; ``--save-arrays``).
    """
    name, owner = choose_backend(backend)
    options = {"checks": checks, "seq": list(seq), "batch": batch, "atol": atol, "rtol": rtol,
               "seed": seed, "unsafe": unsafe, "equal_nan": equal_nan,
               "keep_arrays": keep_arrays}  # fmt: skip
    if owner is not None:
        if not _paths_only(a, b, inputs):
            raise EnvironmentProblem(
                f"backend {name!r}: this process already runs Keras on {owner} (Keras picks "
                "its backend once), and models or inputs held in memory cannot move to a "
                f"worker process; give file paths (they run in a {name} worker) or leave "
                "backend unset"
            )
        return _in_worker(name, owner, a, b, inputs, options)
    from tdcheck.core.model_file import read_model_file

    for model in (a, b):  # one clear line for a file that is not a model, before Keras loads
        if isinstance(model, (str, os.PathLike)):
            read_model_file(os.fspath(model))
    use_here(name)
    result = _compare_here(a, b, inputs, **options)  # type: ignore[arg-type]
    result.backend = name
    return result


def _in_worker(
    name: str, owner: str, a: Any, b: Any, inputs: Any, options: dict[str, Any]
) -> ModelsResult:
    from tdcheck.engines.base import require_installed
    from tdcheck.runners.protocol import read_arrays
    from tdcheck.runners.worker import Worker

    require_installed(name)
    paths = None if inputs is None else (
        [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike))
        else [os.fspath(i) for i in inputs]
    )  # fmt: skip
    request = {"models": {"a": os.fspath(a), "b": os.fspath(b), "inputs": paths, **options}}
    with Worker(name) as worker:
        worker.submit_request(request, {})
        directory = worker.reply_directory()
        doc = json.loads((directory / "result.json").read_text(encoding="utf-8"))
        result = ModelsResult.from_dict(doc, read_arrays(directory))
    result.notes.append(
        f"ran on {name} in a worker process (this process already runs Keras on {owner})"
    )
    return result


def _compare_here(
    a: Any, b: Any, inputs: Any, *, checks: int, seq: Sequence[int], batch: int,
    atol: ToleranceValue, rtol: ToleranceValue, seed: int, unsafe: bool, equal_nan: bool,
    keep_arrays: bool,
) -> ModelsResult:  # fmt: skip
    from tdcheck.engines import keras_rewrite as kr

    model_a, path_a = _resolve(a, unsafe)
    model_b, path_b = _resolve(b, unsafe)
    check_same_inputs(model_a, model_b)
    sets = input_sets(model_a, inputs, checks=checks, seq=seq, batch=batch, seed=seed)
    names = kr.output_names(model_a)
    tolerance = tolerance_for_outputs(output_dtype(model_a), names, atol, rtol)
    log = ArrayLog(input_names=[n for n, _, _ in kr.input_specs(model_a)]) if keep_arrays else None
    comparisons: list[Check] = []
    for label, xs in sets:
        expected = reference_outputs(model_a, xs, label, f"A ({path_a or model_a.name})")
        comparisons += judged_call(label, names, model_b, xs, expected, tolerance,
                                   equal_nan=equal_nan, log=log)  # fmt: skip
    notes: list[str] = []
    if equal_nan:
        notes.append("--equal-nan: NaNs in the same place (and equal infinities) agree")
    same: list[Check] = []
    if tolerance.source == "default":  # --atol/--rtol judge by the user's rule alone
        same = same_computation_checks(model_a, model_b, sets, names, notes, unsafe, equal_nan)
    return ModelsResult(
        a=describe(model_a, path_a),
        b=describe(model_b, path_b),
        params=params_by_layer(model_a, model_b, log),
        comparisons=comparisons,
        tolerance=tolerance,
        notes=notes,
        same_computation=same,
        arrays=log.arrays if log is not None else {},
        check_labels=log.labels if log is not None else [],
    )


def same_computation_checks(
    a: Any, b: Any, sets: Sequence[tuple[str, InputSet]], names: Sequence[str],
    notes: list[str], unsafe: bool = False, equal_nan: bool = False,
) -> list[Check]:  # fmt: skip
    """Same computation in (nearly) exact arithmetic, whatever the models' dtype
    (docs/checks.md): their stored weights, matched by layer name, bit for bit in float64
    (``stored weights``); and both models' float64 clones (weights cast exactly, same
    backend) on every input set (``float64 <set>``, rule ``float64``). Where a model
    cannot run in float64, a note says why and only the other checks judge."""
    from tdcheck.core import samecomp
    from tdcheck.engines import keras_float64 as k64
    from tdcheck.engines import keras_rewrite as kr

    checks: list[Check] = []
    stats, why = samecomp.weights_stats(k64.stored_weights(a), k64.stored_weights(b))
    if stats is not None:
        checks.append(Check("stored weights", "all layers", stats))
    else:
        notes.append(why)
    clones = []
    for label, model in (("A", a), ("B", b)):
        clone, reason = k64.float64_clone(model, unsafe=unsafe)
        if clone is None:
            notes.append(f"no float64 check: {label} ({model.name}): {reason}")
            return checks
        clones.append(clone)
    for label, xs in sets:
        try:
            want = k64.call64(clones[0], xs)
            got = k64.call64(clones[1], xs)
        except kr.CallFailed as exc:
            notes.append(f"no float64 check on {label}: a float64 clone raised ({exc})")
            continue
        checks += [Check(f"float64 {label}", name, samecomp.model_stats(y, w, equal_nan))
                   for name, y, w in zip(names, got, want, strict=True)]  # fmt: skip
    return checks


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
    a: Any, b: Any, inputs: Any = None, *, atol: ToleranceValue = None,
    rtol: ToleranceValue = None, save_arrays: str | None = None, junit: str | None = None,
    **options: Any,
) -> ModelsResult:  # fmt: skip
    """Raise :class:`AssertionError` unless ``b`` computes what ``a`` does (for pytest).

    >>> tdcheck.assert_equivalent(model, rewritten, x, atol=1e-6, rtol=0)  # doctest: +SKIP
    >>> tdcheck.assert_equivalent(a, b, atol={"logits": 1e-4, "*": 1e-6})  # doctest: +SKIP

    Takes :func:`compare_models`' options (``equal_nan``, ``backend``, ``keep_arrays``...);
    ``save_arrays=PATH`` / ``junit=PATH`` also write the archive / JUnit XML, pass or fail.
    """
    if save_arrays is not None:
        options["keep_arrays"] = True
    result = compare_models(a, b, inputs, atol=atol, rtol=rtol, **options)
    write_files(result.to_dict(), result.arrays, save_arrays=save_arrays, junit=junit)
    if not result.passed:
        raise AssertionError(assertion_message(result))
    return result


def write_files(
    doc: dict[str, Any], arrays: dict[str, np.ndarray], *, save_arrays: str | None = None,
    junit: str | None = None,
) -> None:  # fmt: skip
    """``--save-arrays`` (:func:`archive`) and ``--junit`` for a models or rewrite report,
    each written atomically."""
    from tdcheck import files

    if save_arrays is not None:
        files.save_arrays(save_arrays, archive(doc, arrays))
    if junit is not None:
        from tdcheck.reports.junit import models_to_junit

        files.atomic_write_text(junit, models_to_junit(doc))
