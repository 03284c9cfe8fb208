"""The Python API behind ``tdcheck export`` and artifact sides of ``tdcheck models``.

``model.export()`` of a Keras 3 model with ``TimeDistributed`` on a variable-length time
axis writes a graph that loops over the batch size instead of the sequence length:
wrong shapes or a raise whenever batch != length (docs/deploy.md). Here:

* :func:`export` loads IN (safe mode), rewrites every rewritable TimeDistributed (the
  ``rewrite`` machinery), folds the rest (time into the batch axis around the wrapped
  layer, plain ``keras.ops`` reshapes), exports, loads the artifact in its own runtime,
  checks it against IN's eager call on probe shapes that catch the bug by construction
  (:mod:`tdcheck.core.probes`) plus ``inputs``, and writes OUT atomically only when every
  probe passes. The plain ``model.export()`` of IN is probed too, for the before/after.
* :func:`compare_with_artifact` is ``compare_models`` when either side is an artifact (a
  SavedModel folder, ``.onnx``, ``.tflite``): the artifact runs in its runtime, its
  signature is matched with the Keras model's, and the probe shapes are added.

>>> import tdcheck                                            # doctest: +SKIP
>>> result = tdcheck.export("tagger.keras", "tagger.onnx")    # doctest: +SKIP
>>> bool(result), result.written                              # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.commands.models import (
    DEFAULT_BATCH,
    DEFAULT_CHECKS,
    DEFAULT_SEQ,
    ModelsResult,
    assertion_message,
    check_shapes,
    load_inputs,
    random_sets,
)
from tdcheck.core.artifact_file import (
    FORMAT_NAMES,
    artifact_format,
    output_format,
)
from tdcheck.core.judge import Tolerance, judge_output, raised_stats, tolerance_for
from tdcheck.core.probes import DEFAULT_PROBES, probe_shapes
from tdcheck.core.result import SCHEMA_VERSION, Check, fmt, to_jsonable, verdict_text
from tdcheck.errors import EXIT_FAIL, EXIT_PASS, ConfigError, EnvironmentProblem, TdcheckError

Spec = tuple[str, tuple[int | None, ...], str]
InputSet = list[np.ndarray]
Reference = Callable[[InputSet], list[np.ndarray]]


# -- inputs -------------------------------------------------------------------------------


def probe_sets(
    specs: Sequence[Spec], pairs: Sequence[tuple[int, int]] = DEFAULT_PROBES, seed: int = 0,
    mask_value: float | None = None,
) -> list[tuple[str, InputSet]]:  # fmt: skip
    """Random inputs at each probe shape (integers 0/1 for integer inputs, like ``models``)."""
    sets = []
    for n, probe in enumerate(probe_shapes(specs, pairs)):
        rng = np.random.default_rng(seed + 1000 + n)
        xs = []
        for (_, _, dtype), shape in zip(specs, probe.shapes, strict=True):
            kind = "f" if dtype == "bfloat16" else np.dtype(dtype).kind
            if kind in "iub":
                x = rng.integers(0, 2, size=shape).astype(bool if kind == "b" else dtype)
            else:
                x = rng.standard_normal(shape).astype("float32" if dtype == "bfloat16" else dtype)
                if mask_value is not None and x.ndim >= 3 and x.shape[1] > 1:
                    x[0, -1] = mask_value
            xs.append(x)
        sets.append((probe.label, xs))
    return sets


def user_sets(inputs: Any, specs: Sequence[Spec]) -> list[tuple[str, InputSet]]:
    """The user's inputs: ``.npy``/``.npz`` paths, arrays, or lists of arrays."""
    if inputs is None:
        return []
    single = isinstance(inputs, (str, os.PathLike, np.ndarray))
    items = [inputs] if single else list(inputs)
    sets = load_inputs([os.fspath(i) for i in items if isinstance(i, (str, os.PathLike))], specs)
    arrays = [i for i in items if not isinstance(i, (str, os.PathLike))]
    for n, item in enumerate(arrays):
        xs = [np.asarray(item)] if isinstance(item, np.ndarray) else [np.asarray(x) for x in item]
        check_shapes(f"inputs[{n}]", xs, specs)
        sets.append((f"given #{n + 1}", xs))
    return sets


# -- sides: a Keras model or an artifact --------------------------------------------------


@dataclass
class Side:
    """One side of a comparison: what it is, its signature, and how to run it."""

    path: str
    kind: str  # "keras" or an artifact format
    specs: list[Spec]
    outputs: list[tuple[str, tuple[int | None, ...], str]]
    run: Callable[[InputSet], list[np.ndarray]]
    describe: dict[str, Any]
    model: Any = None
    artifact: Any = None

    @property
    def is_artifact(self) -> bool:
        return self.kind != "keras"


def load_keras(model: Any, unsafe: bool) -> tuple[Any, str]:
    """A Keras model object, or one loaded from a path in safe mode (unless ``unsafe``)."""
    from tdcheck.engines import keras_rewrite as kr

    if kr.is_keras_model(model):
        if not getattr(model, "inputs", None):
            raise ConfigError(
                f"{model.name}: a subclassed model declares no inputs to probe; wrap it in a "
                "functional model (keras.Input -> model -> outputs)"
            )
        return model, str(model.name)
    path = os.fspath(model)
    from tdcheck.core.model_file import read_model_file

    read_model_file(path)
    return kr.load_model(path, unsafe=unsafe), path


def keras_side(model: Any, path: str) -> Side:
    from tdcheck.commands.models import describe
    from tdcheck.engines import artifacts as ea
    from tdcheck.engines import keras_rewrite as kr

    outputs = [(t.name, t.shape, t.dtype) for t in ea.keras_outputs(model)]
    return Side(path, "keras", ea.keras_inputs(model) or kr.input_specs(model), outputs,
                lambda xs: ea.call_keras(model, xs), describe(model, path),
                model=model)  # fmt: skip


def artifact_side(artifact: Any) -> Side:
    specs = [(t.name, t.shape, t.dtype) for t in artifact.inputs]
    outputs = [(t.name, t.shape, t.dtype) for t in artifact.outputs]
    described = {
        "path": artifact.path, "name": os.path.basename(os.path.normpath(artifact.path)),
        "class": artifact.kind, "params": None, "runtime": artifact.runtime,
        "inputs": [t.to_dict() for t in artifact.inputs],
        "outputs": [t.to_dict() for t in artifact.outputs], "time_distributed": None,
        "size_bytes": artifact.size_bytes, "load_s": artifact.load_s,
    }  # fmt: skip
    return Side(artifact.path, artifact.format, specs, outputs, artifact.run, described,
                artifact=artifact)  # fmt: skip


def open_side(value: Any, unsafe: bool) -> Side:
    fmt = artifact_format(value)
    if fmt is None:
        return keras_side(*load_keras(value, unsafe))
    from tdcheck.engines import artifacts as ea

    return artifact_side(ea.open_artifact(os.fspath(value), fmt))


def _tensor_text(items: Sequence[tuple[str, tuple[int | None, ...], str]]) -> str:
    return "; ".join(f"{n} {_shape(s)} {d}" for n, s, d in items) or "none"


def _shape(shape: Sequence[int | None]) -> str:
    return str(tuple(shape))


def match_signatures(ref: Side, other: Side) -> list[int]:
    """Check that ``other`` takes and gives what ``ref`` does (names, ranks, dtypes, known
    sizes); exit 2 naming both otherwise. Returns, for each of ``ref``'s inputs, the
    index of ``other``'s input that takes it."""

    def refuse(what: str) -> ConfigError:
        return ConfigError(
            f"{other.path} and {ref.path} do not match: {what} ({other.path} takes "
            f"{_tensor_text(other.specs)}, gives {_tensor_text(other.outputs)}; {ref.path} "
            f"takes {_tensor_text(ref.specs)}, gives {_tensor_text(ref.outputs)})"
        )

    if len(ref.specs) != len(other.specs):
        raise refuse(f"{len(other.specs)} vs {len(ref.specs)} inputs")
    names = [n for n, _, _ in other.specs]
    order = []
    for i, (name, _, _) in enumerate(ref.specs):
        if name in names:
            order.append(names.index(name))
        elif len(ref.specs) == 1 or (not ref.is_artifact and not other.is_artifact):
            order.append(i)
        else:
            raise refuse(f"input {name!r} has no match")
    for (name, shape, dtype), j in zip(ref.specs, order, strict=True):
        oname, oshape, odtype = other.specs[j]
        if name != oname and other.is_artifact != ref.is_artifact:
            raise refuse(f"input {oname!r} vs {name!r}")
        _check_tensor(refuse, f"input {name!r}", shape, dtype, oshape, odtype)
    if len(ref.outputs) != len(other.outputs):
        raise refuse(f"{len(other.outputs)} vs {len(ref.outputs)} outputs")
    for (name, shape, dtype), (_, oshape, odtype) in zip(ref.outputs, other.outputs, strict=True):
        _check_tensor(refuse, f"output {name!r}", shape, dtype, oshape, odtype)
    return order


def _check_tensor(
    refuse: Callable[[str], ConfigError], what: str, shape: Sequence[int | None], dtype: str,
    oshape: Sequence[int | None], odtype: str,
) -> None:  # fmt: skip
    if len(shape) != len(oshape):
        raise refuse(f"{what} has rank {len(oshape)} vs {len(shape)}")
    if any(a is not None and b is not None and a != b for a, b in zip(shape, oshape, strict=True)):
        raise refuse(f"{what} has shape {_shape(oshape)} vs {_shape(shape)}")
    if dtype != odtype:
        raise refuse(f"{what} has dtype {odtype} vs {dtype}")


# -- probing ------------------------------------------------------------------------------


def probe(
    subject: str, run: Callable[[InputSet], list[np.ndarray]],
    sets: Sequence[tuple[str, InputSet]], names: Sequence[str],
    expected: Sequence[list[np.ndarray]], tolerance: Tolerance, reference: str = "Keras",
    order: Sequence[int] | None = None,
) -> tuple[list[Check], float | None]:  # fmt: skip
    """``run`` on each input set, judged against ``expected``. A wrong shape or a raise is
    the check's note, worded as the headline finding. Returns the checks and the first
    call's seconds (None when it raised)."""
    from tdcheck.engines.artifacts import ArtifactRaised

    checks: list[Check] = []
    first_s: float | None = None
    for n, ((label, xs), want) in enumerate(zip(sets, expected, strict=True)):
        feed = xs if order is None else [xs[i] for i in _inverse(order)]
        start = time.perf_counter()
        try:
            got = run(feed)
        except ArtifactRaised as exc:
            checks += [Check(label, name, raised_stats(f"{subject} raises for {label}: {exc}",
                                                       w, tolerance))
                       for name, w in zip(names, want, strict=True)]  # fmt: skip
            continue
        if n == 0:
            first_s = time.perf_counter() - start
        for name, y, w in zip(names, got, want, strict=True):
            stats = judge_output(y, w, tolerance.for_output(name))
            if y.shape != w.shape:
                stats = dataclasses.replace(stats, note=(
                    f"{subject} returns {_shape(y.shape)} for {label}; {reference} returns "
                    f"{_shape(w.shape)}"))  # fmt: skip
            checks.append(Check(label, name, stats))
    return checks, first_s


def _inverse(order: Sequence[int]) -> list[int]:
    """``order[i]`` is where ``ref`` input i goes; the feed lists ``other``'s inputs."""
    inverse = [0] * len(order)
    for i, j in enumerate(order):
        inverse[j] = i
    return inverse


def reference_outputs(side: Side, sets: Sequence[tuple[str, InputSet]]) -> list[list[np.ndarray]]:
    """The reference's outputs on every set; a reference that raises is exit 2."""
    from tdcheck.engines.artifacts import ArtifactRaised

    out = []
    for label, xs in sets:
        try:
            out.append(side.run(xs))
        except ArtifactRaised as exc:
            raise ConfigError(
                f"{side.path} raises when called on input {label} ({exc}); nothing can be "
                "checked against it"
            ) from None
    return out


def _output_dtype(side: Side) -> str:
    """The dtype whose default tolerances judge the outputs (the first output's)."""
    return side.outputs[0][2] if side.outputs else "float32"


def compare_with_artifact(
    a: Any, b: Any, inputs: Any = None, *, checks: int = DEFAULT_CHECKS,
    seq: Sequence[int] = DEFAULT_SEQ, batch: int = DEFAULT_BATCH, atol: float | None = None,
    rtol: float | None = None, seed: int = 0, unsafe: bool = False,
    probes: Sequence[tuple[int, int]] = DEFAULT_PROBES,
) -> ModelsResult:  # fmt: skip
    """``compare_models`` where A or B (or both) is an artifact; B judged against A on the
    probe shapes, ``checks`` random sets and ``inputs``."""
    if checks < 0 or batch < 1 or not seq or any(s < 1 for s in seq):
        raise ConfigError("checks must be >= 0, batch and every sequence length >= 1")
    side_a = open_side(a, unsafe)
    side_b = open_side(b, unsafe)
    order = match_signatures(side_a, side_b)
    mask = None
    if side_a.model is not None:
        from tdcheck.engines import keras_rewrite as kr

        mask = kr.mask_value(side_a.model)
    sets = probe_sets(side_a.specs, probes, seed, mask)
    if checks:
        sets += random_sets(side_a.specs, checks=checks, seq=seq, batch=batch, seed=seed,
                            mask_value=mask)  # fmt: skip
    sets += user_sets(inputs, side_a.specs)
    tolerance = tolerance_for(_output_dtype(side_a), atol, rtol)
    names = [n for n, _, _ in side_a.outputs]
    expected = reference_outputs(side_a, sets)
    subject, reference = _subjects(side_a, side_b)
    comparisons, _ = probe(subject, side_b.run, sets, names, expected, tolerance, reference,
                           order=order)  # fmt: skip
    notes = [
        f"{s.path} is a {s.describe['class']} artifact, run with {s.describe['runtime']}"
        for s in (side_a, side_b) if s.is_artifact
    ]  # fmt: skip
    return ModelsResult(a=side_a.describe, b=side_b.describe, params=[],
                        comparisons=comparisons, tolerance=tolerance, notes=notes)  # fmt: skip


def _subjects(a: Side, b: Side) -> tuple[str, str]:
    if b.is_artifact and not a.is_artifact:
        return "the exported model", "Keras"
    if a.is_artifact and not b.is_artifact:
        return "the Keras model B", f"the exported model A ({FORMAT_NAMES[a.kind]})"
    return f"B ({FORMAT_NAMES[b.kind]})", f"A ({FORMAT_NAMES[a.kind]})"


def is_artifact(value: Any) -> bool:
    return artifact_format(value) is not None


def assert_equivalent_artifact(a: Any, b: Any, inputs: Any = None, **options: Any) -> ModelsResult:
    result = compare_with_artifact(a, b, inputs, **options)
    if not result.passed:
        raise AssertionError(assertion_message(result))
    return result


# -- export -------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What was rewritten and folded, the probes of the plain and tdcheck exports, the
    artifact's size and timings, and whether OUT was written. Truth value: OUT is right."""

    source: str
    out: str
    format: str
    replaced: list[Any]
    folded: list[str]
    kept: list[Any]
    comparisons: list[Check]
    tolerance: Tolerance
    plain: list[Check] | None
    probes: list[dict[str, Any]]
    artifact: dict[str, Any]
    findings: list[str] = field(default_factory=list)
    refused: str | None = None
    written: bool = False
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return (
            self.refused is None
            and bool(self.comparisons)
            and all(c.passed for c in self.comparisons)
        )

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def verdict(self) -> str:
        kind = FORMAT_NAMES[self.format]
        if self.refused is not None:
            return f"NOT EXPORTED: {self.refused}; nothing written"
        if not self.passed:
            text = verdict_text(self.comparisons, self.tolerance, "the artifact and IN are")
            return f"NOT EXPORTED: the {kind} artifact is wrong: {text}; nothing written"
        n = len({c.check for c in self.comparisons})
        where = f"written to {self.out}" if self.written else "not written"
        if all(c.stats.bitwise_equal for c in self.comparisons):
            detail = "bitwise identical"
        else:
            diff = max((c.stats.max_abs_diff or 0.0) for c in self.comparisons)
            ulp = max((c.stats.max_ulp or 0) for c in self.comparisons)
            detail = f"max abs diff {fmt(diff)}, up to {ulp} ULP"
        return (
            f"EXPORTED: the {kind} artifact gives IN's outputs on all {n} probes ({detail}); "
            f"{where}"
        )

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "command": "export",
                "passed": self.passed,
                "exit_code": self.exit_code,
                "verdict": self.verdict(),
                "in": self.source,
                "out": self.out,
                "format": self.format,
                "written": self.written,
                "refused": self.refused,
                "findings": self.findings,
                "replaced": [t.to_dict() for t in self.replaced],
                "folded": self.folded,
                "kept": [t.to_dict() for t in self.kept],
                "probes": self.probes,
                "artifact": self.artifact,
                "tolerance": self.tolerance.to_dict(),
                "comparisons": [c.to_dict() for c in self.comparisons],
                "plain_comparisons": None
                if self.plain is None
                else [c.to_dict() for c in self.plain],
                "notes": self.notes,
            }
        )


def check_out(out: str, fmt: str, force: bool) -> None:
    """OUT: a new path (or a file of that format, replaced; or with ``force`` an existing
    SavedModel folder) in an existing, writable folder. Checked before any work."""
    if not out or not out.strip() or "\x00" in out:
        raise ConfigError("OUT: give a path")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ConfigError(f"OUT: the folder {os.path.dirname(out) or '.'!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"OUT: cannot write into {folder!r}")
    if os.path.islink(out):
        raise ConfigError(f"OUT {out!r} is a symbolic link; give the real path")
    if not os.path.lexists(out):
        return
    if fmt == "savedmodel":
        if not os.path.isdir(out):
            raise ConfigError(f"OUT {out!r} exists and is not a folder; a SavedModel is one")
        if not force:
            raise ConfigError(f"OUT {out!r} exists; --force replaces an existing SavedModel")
        if os.listdir(out) and not os.path.isfile(os.path.join(out, "saved_model.pb")):
            raise ConfigError(
                f"OUT {out!r} is a folder that is not a SavedModel; refusing to replace it"
            )
        return
    if not os.path.isfile(out):
        raise ConfigError(f"OUT {out!r} exists and is not a regular file; refusing to replace it")


def _place(tmp: str, out: str, fmt: str, scratch: str) -> None:
    """Move the verified artifact into place (files: one atomic rename; a SavedModel over
    an old one: the old folder is moved aside first, then removed)."""
    if fmt != "savedmodel":
        os.replace(tmp, out)  # a regular file or nothing: replaced in one step
        return
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    aside = os.path.join(scratch, "previous")
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)
        raise


def _describe_probe_cell(checks: Sequence[Check]) -> str:
    failed = [c for c in checks if not c.passed]
    if not failed:
        diff = max((c.stats.max_abs_diff or 0.0) for c in checks)
        return "right" + (" (bitwise)" if all(c.stats.bitwise_equal for c in checks)
                          else f" (max abs {diff:.2g})")  # fmt: skip
    c = failed[0]
    if c.stats.note and " raises " in c.stats.note:
        return "raises: " + c.stats.note.split(": ", 1)[-1]
    if c.stats.shape_a != c.stats.shape_b:
        return f"{_shape(c.stats.shape_a)} wrong"
    return f"wrong values (max abs {c.stats.max_abs_diff:.2g})"


def _probe_rows(
    sets: Sequence[tuple[str, InputSet]], expected: Sequence[list[np.ndarray]],
    after: Sequence[Check], plain: Sequence[Check] | None,
) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    for (label, xs), want in zip(sets, expected, strict=True):
        mine = [c for c in after if c.check == label]
        row = {
            "probe": label,
            "inputs": ", ".join(_shape(x.shape) for x in xs),
            "keras": ", ".join(_shape(w.shape) for w in want),
            "plain": None if plain is None
            else _describe_probe_cell([c for c in plain if c.check == label]),
            "out": _describe_probe_cell(mine) if mine else None,
        }  # fmt: skip
        rows.append(row)
    return rows


def _probe_artifact(
    path: str, fmt: str, subject: str, sets: Sequence[tuple[str, InputSet]],
    names: Sequence[str], expected: Sequence[list[np.ndarray]], tolerance: Tolerance,
    ref: Side,
) -> tuple[list[Check], dict[str, Any]]:  # fmt: skip
    from tdcheck.engines import artifacts as ea

    artifact = ea.open_artifact(path, fmt)
    side = artifact_side(artifact)
    order = match_signatures(ref, side)
    checks, first_s = probe(subject, side.run, sets, names, expected, tolerance, order=order)
    info = {"size_bytes": artifact.size_bytes, "load_s": artifact.load_s,
            "first_call_s": first_s, "runtime": artifact.runtime,
            "inputs": side.describe["inputs"], "outputs": side.describe["outputs"]}  # fmt: skip
    return checks, info


def export(
    model: Any, out: str, *, format: str | None = None, inputs: Any = None,
    probes: Sequence[tuple[int, int]] = DEFAULT_PROBES, atol: float | None = None,
    rtol: float | None = None, seed: int = 0, unsafe: bool = False, force: bool = False,
    plain: bool = True, on_step: Callable[[str], None] | None = None,
) -> ExportResult:  # fmt: skip
    """Export ``model`` (a Keras model or a ``.keras``/``.h5`` path) to ``out`` so that the
    artifact is right for any batch and length; see the module docstring.

    ``format``: ``savedmodel``/``onnx``/``tflite`` (default: from ``out``). ``plain``:
    also probe IN's plain ``model.export()`` (the before). Exit codes via the result:
    0 written, 1 not (the finding says why); bad input raises ConfigError (exit 2), a
    missing runtime EnvironmentProblem (exit 3).
    """
    step = on_step or (lambda text: None)
    from tdcheck.engines import artifacts as ea
    from tdcheck.engines import keras_rewrite as kr

    fmt = output_format(out, format)
    check_out(out, fmt, force)
    ea.check_exporter(fmt)
    if (
        not kr.is_keras_model(model)
        and os.path.exists(os.fspath(model))
        and os.path.exists(out)
        and os.path.samefile(os.fspath(model), out)
    ):
        raise ConfigError(f"OUT {out!r} is IN")
    if not probes:
        raise ConfigError("--probes: give at least one BATCHxLENGTH pair")
    step("loading IN")
    original, source = load_keras(model, unsafe)
    ref = keras_side(original, source)
    sets = probe_sets(ref.specs, probes, seed, kr.mask_value(original)) + user_sets(
        inputs, ref.specs
    )
    names = [n for n, _, _ in ref.outputs]
    tolerance = tolerance_for(_output_dtype(ref), atol, rtol)
    step("running IN on the probes")
    expected = reference_outputs(ref, sets)
    kind = FORMAT_NAMES[fmt]
    folder = os.path.dirname(os.path.abspath(out))
    scratch = tempfile.mkdtemp(prefix=".tdcheck-export-", dir=folder)
    result = ExportResult(
        source=source, out=out, format=fmt, replaced=[], folded=[], kept=[], comparisons=[],
        tolerance=tolerance, plain=None, probes=[], artifact={},
    )  # fmt: skip
    try:
        plain_checks: list[Check] | None = None
        if plain:
            plain_checks = _plain(original, fmt, scratch, sets, names, expected, tolerance,
                                  ref, step, result)  # fmt: skip
        result.plain = plain_checks
        subclassed = None
        try:
            kr.check_graph_model(original, source)
        except ConfigError:
            subclassed = type(original).__name__
        folded = original
        if subclassed is None:
            step("rewriting TimeDistributed layers")
            rewritten, done = kr.rebuild(original, unsafe=unsafe)
            result.replaced, result.kept = done.replaced, done.kept
            step("folding the remaining TimeDistributed layers")
            try:
                folded, result.folded = ea.fold_time_distributed(rewritten)
            except (KeyboardInterrupt, TdcheckError):
                raise
            except Exception as exc:  # a graph Keras cannot clone
                folded = rewritten
                result.refused = (
                    f"the remaining TimeDistributed layers cannot be folded ({ea.error_line(exc)})"
                )
        try:  # Keras exports only a model that was called once
            if result.refused is None:
                ea.call_keras(folded, sets[0][1])
        except ea.ArtifactRaised as exc:
            result.refused = f"the rewritten model raises ({exc})"
        target = os.path.join(scratch, "model" + ("" if fmt == "savedmodel" else "." + fmt))
        step(f"exporting {kind}")
        start = time.perf_counter()
        try:
            if result.refused is None:
                ea.export(folded, target, fmt)
        except ea.ExportFailed as exc:
            result.refused = f"Keras cannot export the rewritten model as {kind} ({exc})"
        except OSError as exc:
            raise _disk(exc, out) from None
        export_s = time.perf_counter() - start
        if result.refused is None:
            step(f"checking the {kind} artifact")
            try:
                result.comparisons, result.artifact = _probe_artifact(
                    target, fmt, "the exported model", sets, names, expected, tolerance, ref
                )
            except ea.NeedsFlex as exc:
                raise ea.NeedsFlex(
                    f"{out}: not written: {exc.message.split(': ', 1)[-1]}"
                ) from None
            result.artifact["export_s"] = export_s
            if subclassed is not None and not result.passed:
                result.refused = (
                    f"a subclassed model ({subclassed}) has no layer graph tdcheck can rebuild, "
                    f"and its export is wrong ({_first_problem(result.comparisons)}); replace "
                    "TimeDistributed(layer) by layer, or fold time into the batch axis, in its "
                    "call()"
                )
            elif not result.passed:
                custom = ea.custom_layers(folded)
                inside = (
                    f"; tdcheck cannot look inside custom layers ({', '.join(custom)}), where a "
                    "TimeDistributed may hide"
                    if custom
                    else ""
                )
                result.refused = (
                    f"the {kind} export is still wrong after rewriting and folding every "
                    f"TimeDistributed layer ({_first_problem(result.comparisons)}){inside}"
                )
            if result.passed:
                step(f"writing {out}")
                try:
                    _place(target, out, fmt, scratch)
                except OSError as exc:
                    raise _disk(exc, out) from None
                result.written = True
        result.probes = _probe_rows(sets, expected, result.comparisons, plain_checks)
        _explain(result, kind)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _first_problem(checks: Sequence[Check]) -> str:
    bad = [c for c in checks if not c.passed]
    noted = [c for c in bad if c.stats.note]
    if noted:
        return str(noted[0].stats.note)
    return f"wrong values on {bad[0].check}" if bad else "no checks"


def _disk(exc: OSError, out: str) -> EnvironmentProblem | ConfigError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EnvironmentProblem(
            f"OUT {out!r}: the disk is full ({exc.strerror}); nothing written"
        )
    return ConfigError(f"OUT {out!r}: cannot write ({exc.strerror or exc}); nothing written")


def _plain(
    original: Any, fmt: str, scratch: str, sets: Sequence[tuple[str, InputSet]],
    names: Sequence[str], expected: Sequence[list[np.ndarray]], tolerance: Tolerance,
    ref: Side, step: Callable[[str], None], result: ExportResult,
) -> list[Check] | None:  # fmt: skip
    """IN's plain ``model.export()`` probed the same way: the finding that leads the report."""
    from tdcheck.engines import artifacts as ea

    kind = FORMAT_NAMES[fmt]
    target = os.path.join(scratch, "plain" + ("" if fmt == "savedmodel" else "." + fmt))
    step(f"the plain model.export() as {kind}")
    try:
        ea.export(original, target, fmt)
        checks, _ = _probe_artifact(target, fmt, "the plain export", sets, names, expected,
                                    tolerance, ref)  # fmt: skip
    except ea.ExportFailed as exc:
        result.findings.append(f"plain model.export() as {kind} fails: {exc}")
        return None
    except ea.NeedsFlex as exc:
        result.notes.append(f"plain model.export() not checked: {exc.message.split(': ', 1)[-1]}")
        return None
    except OSError as exc:
        raise _disk(exc, result.out) from None
    finally:
        with contextlib.suppress(OSError):
            (shutil.rmtree if os.path.isdir(target) else os.unlink)(target)
    bad = [c for c in checks if not c.passed]
    if bad:
        labels = {c.check for c in bad}
        why = _first_problem(bad)
        result.findings.append(
            f"plain model.export() is WRONG on {len(labels)} of {len({c.check for c in checks})} "
            f"probes: {why}"
        )
    return checks


def _explain(result: ExportResult, kind: str) -> None:
    if result.replaced:
        names = ", ".join(t.name for t in result.replaced)
        result.notes.append(f"rewritten as their layer (the rewrite machinery): {names}")
    if result.folded:
        result.notes.append(
            "folded (time into the batch axis around the wrapped layer, plain keras.ops "
            f"reshapes): {', '.join(p.rsplit('/', 1)[-1] for p in result.folded)}; the "
            "artifact needs neither tdcheck nor custom code to run"
        )
    if not result.replaced and not result.folded and result.refused is None:
        result.notes.append("IN has no TimeDistributed layer: exported as it is, and checked")
    if result.written and result.format == "savedmodel":
        result.notes.append(
            f"serve it with its {'serving_default'!r} signature (tf.saved_model.load(OUT)"
            ".signatures['serving_default'])"
        )


def export_formats() -> list[str]:
    """The formats :func:`export_check` can check here: SavedModel always, ONNX with the
    ``onnx`` extra (tf2onnx writes it, onnxruntime runs it)."""
    from tdcheck.engines.artifacts import installed

    formats = ["savedmodel"]
    if all(installed(m) for m in ("tf2onnx", "onnx", "onnxruntime")):
        formats.append("onnx")
    return formats


def export_check(reference: Any, model: Any, *, seed: int = 0) -> str:
    """One line for ``rewrite``'s report: does ``model`` (the rewritten ``reference``)
    export right? Checked, not assumed: exported in each of :func:`export_formats`, run
    in the runtime, judged against ``reference``'s eager call on the probe shapes."""

    try:
        return _export_check(reference, model, seed)
    except TdcheckError as exc:  # e.g. a runtime that cannot load what Keras wrote
        return f"the rewritten model's exports were not checked: {exc.message}"


def _export_check(reference: Any, model: Any, seed: int) -> str:
    from tdcheck.engines import artifacts as ea
    from tdcheck.engines import keras_rewrite as kr

    ref = keras_side(reference, str(reference.name))
    sets = probe_sets(ref.specs, DEFAULT_PROBES, seed, kr.mask_value(reference))
    names = [n for n, _, _ in ref.outputs]
    tolerance = tolerance_for(_output_dtype(ref), None, None)
    expected = reference_outputs(ref, sets)
    right, wrong = [], []
    scratch = tempfile.mkdtemp(prefix="tdcheck-export-check-")
    try:
        ea.call_keras(model, sets[0][1])
        for fmt in export_formats():
            target = os.path.join(scratch, "model" + ("" if fmt == "savedmodel" else "." + fmt))
            try:
                ea.export(model, target, fmt)
                checks, _ = _probe_artifact(target, fmt, f"its {FORMAT_NAMES[fmt]} export",
                                            sets, names, expected, tolerance, ref)  # fmt: skip
            except ea.ExportFailed as exc:
                wrong.append(f"{FORMAT_NAMES[fmt]} cannot be exported ({exc})")
                continue
            if all(c.passed for c in checks):
                right.append(FORMAT_NAMES[fmt])
            else:
                wrong.append(_first_problem(checks))
    except ea.ArtifactRaised as exc:
        wrong.append(f"the rewritten model raises ({exc})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shapes = "; ".join(label for label, _ in sets)
    if wrong:
        return (
            f"the rewritten model still exports WRONG: {wrong[0]}; tdcheck export IN OUT "
            "folds the TimeDistributed layers that stay"
        )
    missing = "" if "ONNX" in right else " (ONNX not checked: install the onnx extra)"
    return (
        f"the rewritten model exports right: its {' and '.join(right)} export "
        f"{'gives' if len(right) == 1 else 'give'} the original's outputs on {len(sets)} probe "
        f"shapes ({shapes}){missing}"
    )
