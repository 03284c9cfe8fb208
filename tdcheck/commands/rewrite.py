"""The Python API behind ``tdcheck rewrite``: replace TimeDistributed, prove it, time it.

1. Rebuild the model with each rewritable ``TimeDistributed(layer)`` replaced by
   ``layer`` (same name, same weights; :mod:`tdcheck.engines.keras_rewrite`).
2. Verify: original and rewritten called on the same random inputs (every unknown axis
   through two or more sizes, batch != size; stateful layers reset before every call) and
   the user's, judged by the same-computation rule of :mod:`tdcheck.core.shadow` (float64
   clones of both agree; float32 differs by no more than the original's own rounding), or
   by ``--atol``/``--rtol`` when given; the rewritten model's ``predict`` on every input
   shape too. The ORIGINAL's ``predict`` on each new input shape is checked against its own
   eager call: Keras 3's TimeDistributed under a retraced ``predict`` maps over the batch
   axis (wrong shape or values when batch < length, an error when batch > length). That
   finding leads the report, and kept TimeDistributed layers that keep it are named.
3. Time both (eager call, first ``predict`` with tracing, steady-state ``predict``).
4. Write OUT only when verification passed (or ``force``): saved to a temp file in OUT's
   folder, reloaded and checked once more, then renamed into place.

>>> import tdcheck                                           # doctest: +SKIP
>>> result = tdcheck.rewrite("model.keras", "fast.keras")    # doctest: +SKIP
>>> bool(result), result.written                             # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.commands.models import (
    DEFAULT_BATCH,
    DEFAULT_CHECKS,
    DEFAULT_SEQ,
    ArrayLog,
    choose_backend,
    input_sets,
    judged_call,
    judged_outputs,
    output_dtype,
    params_by_layer,
    random_inputs,
    reference_outputs,
    same_computation_checks,
    same_computation_verdict,
    use_here,
)
from tdcheck.core import rules, shadow
from tdcheck.core.judge import Tolerance, ToleranceValue, tolerance_for, tolerance_for_outputs
from tdcheck.core.model_file import WrappedLayer, read_model_file
from tdcheck.core.result import SCHEMA_VERSION, Check, fmt, to_jsonable, verdict_text
from tdcheck.errors import EXIT_FAIL, EXIT_PASS, ConfigError
from tdcheck.reports.render import shape_text


@dataclass
class RewriteResult:
    """What was replaced, the checks, the original's findings, timings, and whether OUT
    was written. Its truth value: the rewritten model passed every check."""

    source: str
    out: str | None
    replaced: list[WrappedLayer]
    kept: list[WrappedLayer]
    comparisons: list[Check]
    tolerance: Tolerance
    findings: list[str]
    before: dict[str, Any]
    after: dict[str, Any]
    timing_shape: str
    regressions: list[str] = field(default_factory=list)
    written: bool = False
    dry_run: bool = False
    model: Any = field(default=None, repr=False)  # the rewritten Keras model
    notes: list[str] = field(default_factory=list)
    pass_rule: str | None = None  # the float64 same-computation rule, when it judged
    inference_only: bool = False  # inference-only layers were rewritten: OUT trains differently
    still_wrong: bool = False  # OUT's predict keeps the original's problem (kept layers)
    #: Same computation in float64: stored weights and float64 clones (docs/checks.md).
    same_computation: list[Check] = field(default_factory=list)
    backend: str = "tensorflow"
    #: Each layer of the original and the rewritten model, matched by name, weights compared.
    params: list[dict[str, Any]] = field(default_factory=list)
    #: ``--save-arrays``: inputs, both models' outputs and weights (see models.archive).
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    check_labels: list[str] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return (
            all(c.passed for c in self.comparisons)
            and all(c.passed for c in self.same_computation)
            and not self.regressions
            and self.before["params"] == self.after["params"]
        )

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def verdict(self) -> str:
        if not self.replaced:
            n = len(self.kept)
            return (
                f"NOTHING TO REWRITE: {n} TimeDistributed {'layer' if n == 1 else 'layers'}, "
                "none rewritable; nothing written"
            )
        if self.before["params"] != self.after["params"]:
            return (
                f"NOT EQUIVALENT: parameters differ ({self.before['params']:,} before, "
                f"{self.after['params']:,} after); not written"
            )
        text = verdict_text(self.comparisons, self.tolerance, "rewritten and original are")
        text = same_computation_verdict(text, self.same_computation)
        if self.regressions and text.startswith("EQUIVALENT"):
            text = f"NOT EQUIVALENT: {self.regressions[0]}"
        elif self.pass_rule and text.startswith("EQUIVALENT"):
            text = self._shadow_text()
        if text.startswith("EQUIVALENT") and self.still_wrong:
            text += (
                "; OUT's model.predict on a new input size stays WRONG, as IN's does "
                "(kept TimeDistributed layers)"
            )
        if text.startswith("EQUIVALENT") and self.inference_only:
            text += "; in inference only: OUT TRAINS DIFFERENTLY"
        n = len(self.replaced)
        head = f"{n} TimeDistributed {'layer' if n == 1 else 'layers'} rewritten. "
        if self.written:
            tail = f"; written to {self.out}"
        elif self.dry_run:
            tail = "; dry run, nothing written"
        elif self.out is None:
            tail = ""
        else:
            tail = "; NOT written (--force writes anyway)"
        return head + text + tail

    def _shadow_text(self) -> str:
        f64 = [c for c in self.comparisons if c.check.startswith("float64 ")]
        f32 = [c for c in self.comparisons if not c.check.startswith("float64 ")]
        dtype = self.tolerance.dtype
        if all(c.stats.bitwise_equal for c in f64):
            agree = f"the float64 clones are bitwise identical too on all {len(f64)} checks"
        else:
            diff64 = max((c.stats.max_abs_diff or 0.0) for c in f64)
            agree = f"the float64 clones agree to {fmt(diff64)} on all {len(f64)} checks"
        if all(c.stats.bitwise_equal for c in f32):
            return (
                f"EQUIVALENT: rewritten and original are bitwise identical on all {len(f32)} "
                f"{dtype} checks; {agree}"
            )
        ulp = max((c.stats.max_ulp or 0) for c in f32)
        diff = max((c.stats.max_abs_diff or 0.0) for c in f32)
        margin = max((c.stats.margin or 0.0) for c in f32)
        return (
            f"EQUIVALENT: the same computation, {agree}; {dtype} differs by rounding only: "
            f"up to {ulp} ULP, max abs diff {fmt(diff)}, margin {fmt(margin)} "
            f"({len(f32)} checks)"
        )

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "command": "rewrite",
                "pass_rule": self.pass_rule,
                "passed": self.passed,
                "exit_code": self.exit_code,
                "verdict": self.verdict(),
                "backend": self.backend,
                "in": self.source,
                "out": self.out,
                "written": self.written,
                "dry_run": self.dry_run,
                "findings": self.findings,
                "regressions": self.regressions,
                "replaced": [t.to_dict() for t in self.replaced],
                "kept": [t.to_dict() for t in self.kept],
                "tolerance": self.tolerance.to_dict(),
                "comparisons": [c.to_dict() for c in self.comparisons],
                "same_computation": [c.to_dict() for c in self.same_computation],
                "before": self.before,
                "after": self.after,
                "timing_shape": self.timing_shape,
                "params": self.params,
                "notes": self.notes,
                "check_labels": self.check_labels,
            }
        )


Allowed = dict[str, list[np.ndarray]]  # per input-set label: each output's allowance


def predict_findings(
    model: Any, sets: Sequence[tuple[str, list[np.ndarray]]], names: Sequence[str],
    tolerance: Tolerance, reference: Any = None, allowed: Allowed | None = None, *,
    equal_nan: bool = False, log: ArrayLog | None = None,
) -> tuple[list[tuple[str, str]], list[Check]]:  # fmt: skip
    """``predict`` from a fresh trace on one set per input shape, against the eager call
    of ``reference`` (default: the model itself): wrong shapes and errors as findings (with
    the input set's label), the values as checks. Every unknown axis counts, not only
    axis 1 (an OCR model's varying axis is the image width)."""
    from tdcheck.engines import keras_rewrite as kr

    findings: list[tuple[str, str]] = []
    checks: list[Check] = []
    picked = _one_per_shape(sets)
    results = kr.predict_series(model, [xs for _, xs in picked])
    for n, ((label, xs), got) in enumerate(zip(picked, results, strict=True)):
        when = "on its first call" if n == 0 else f"on {_new_sizes(picked[0][1], xs)}"
        when += f", input {' and '.join(shape_text(x.shape) for x in xs)}"
        if isinstance(got, str):
            findings.append((label, f"model.predict raises {when}: {got}"))
            continue
        expected = _reference(model if reference is None else reference, xs, label,
                              "the original model")  # fmt: skip
        judged = judged_outputs(f"predict {label}", names, xs, got, expected, tolerance,
                                equal_nan=equal_nan, log=log,
                                allowed=(allowed or {}).get(label))  # fmt: skip
        for name, y, want, check in zip(names, got, expected, judged, strict=True):
            if y.shape != want.shape:
                findings.append((label,
                    f"model.predict gives the WRONG SHAPE {when}: {shape_text(y.shape)} instead "
                    f"of {shape_text(want.shape)} for output {name!r}"
                ))  # fmt: skip
            elif not check.passed:
                against = "its own eager call" if reference is None else "the original's"
                findings.append((label,
                    f"model.predict gives WRONG VALUES {when}: output {name!r} differs from "
                    f"{against} by up to {fmt(check.stats.max_abs_diff)} "
                    f"({check.stats.mismatched}/{check.stats.total} elements)"
                ))  # fmt: skip
        checks += judged
    return findings, checks


def _one_per_shape(
    sets: Sequence[tuple[str, list[np.ndarray]]],
) -> list[tuple[str, list[np.ndarray]]]:
    """The first set of each distinct input shape (batch axis excluded): every unknown
    axis, wherever it is, gets a predict on a new size."""
    seen: set[tuple[tuple[int, ...], ...]] = set()
    picked = []
    for label, xs in sets:
        key = tuple(tuple(x.shape[1:]) for x in xs)
        if key not in seen:
            seen.add(key)
            picked.append((label, xs))
    return picked


def _new_sizes(first: Sequence[np.ndarray], xs: Sequence[np.ndarray]) -> str:
    """``a new size of axis 2 (5 -> 7)``: the axes whose size differs from the first set."""
    changes = [
        f"axis {axis}{f' of input {i + 1}' if len(xs) > 1 else ''} ({a} -> {b})"
        for i, (x0, x) in enumerate(zip(first, xs, strict=True))
        for axis, (a, b) in enumerate(zip(x0.shape, x.shape, strict=True))
        if axis > 0 and a != b
    ]
    if not changes:
        return "a new input shape"
    return f"a new size of {', '.join(changes)}"


def _reference(
    model: Any, xs: list[np.ndarray], label: str, what: str,
    longer: Callable[[int], list[np.ndarray]] | None = None,
) -> list[np.ndarray]:  # fmt: skip
    """The original's outputs. When it cannot take a random input set but does take one
    with longer unknown axes (``longer(size)``: a convolution or pooling over that axis
    needs more steps than the default ``--seq``), the error says which ``--seq`` works."""
    from tdcheck.engines import keras_rewrite as kr

    try:
        return reference_outputs(model, xs, label, what)
    except ConfigError as exc:
        if longer is None or not label.startswith("#"):
            raise
        for size in LONGER_SEQ:
            try:
                kr.call(model, longer(size))
            except kr.CallFailed:
                continue
            raise ConfigError(
                f"{exc.message}; it runs when the unknown axes are {size} long: give longer "
                f"sizes, e.g. --seq {size},{size + 2}"
            ) from None
        raise


#: Unknown-axis sizes tried when the original cannot take the --seq ones.
LONGER_SEQ = (32, 128)


class _Shadow:
    """Both models as float64 clones, and what they say about each input set
    (:mod:`tdcheck.core.shadow`)."""

    def __init__(self, original: Any, rewritten: Any, unsafe: bool) -> None:
        from tdcheck.engines import keras_float64 as k64
        from tdcheck.engines import keras_rewrite as kr

        clones = []
        for model in (original, rewritten):
            clone, why = k64.float64_clone(model, unsafe=unsafe)
            if clone is None:
                raise kr.CallFailed(why or "no float64 clone")
            clones.append(clone)
        self.original, self.rewritten = clones

    def check(
        self, label: str, names: Sequence[str], xs: list[np.ndarray],
        expected: Sequence[np.ndarray], tolerance: Tolerance, log: ArrayLog | None = None,
    ) -> tuple[list[Check], list[np.ndarray]]:  # fmt: skip
        """The float64 same-computation checks, and each float32 output's allowance."""
        from tdcheck.engines import keras_rewrite as kr

        xs64 = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in xs]
        a64 = kr.call(self.original, xs64)
        allowed64 = [shadow.float64_allowance(a, a_64, tolerance.dtype)
                     for a, a_64 in zip(expected, a64, strict=True)]  # fmt: skip
        checks = [
            Check(f"float64 {label}", c.output, c.stats, keys=c.keys)
            for c in judged_call(f"float64 {label}", names, self.rewritten, xs64, a64,
                                 tolerance_for("float64", 0.0, shadow.FLOAT64_RTOL),
                                 allowed=allowed64, log=log)
        ]  # fmt: skip
        allowed = [shadow.rounding_allowance(a, a_64, tolerance.atol, tolerance.rtol)
                   for a, a_64 in zip(expected, a64, strict=True)]  # fmt: skip
        return checks, allowed


def _notes_on_layers(done: Any, inference_only: bool) -> list[str]:
    """What the kept and inference-only layers mean for OUT."""
    notes = []
    waiting = [t for t in done.kept if t.verdict.verdict == rules.INFERENCE_ONLY]
    if waiting and not inference_only:
        names = ", ".join(t.path for t in waiting)
        notes.append(
            f"{len(waiting)} inference-only layer(s) kept ({names}): equal in inference, "
            "not in training; --inference-only rewrites them too, and OUT then trains "
            "differently"
        )
    rewritten = [t for t in done.replaced if t.verdict.verdict == rules.INFERENCE_ONLY]
    if rewritten:
        names = ", ".join(t.path for t in rewritten)
        notes.append(
            f"--inference-only rewrote {names}: OUT computes the same in inference but TRAINS "
            "DIFFERENTLY (per-timestep batch statistics, noise or activity loss); use it for "
            "inference, or fine-tune from IN"
        )
    variable = [t for t in done.kept if t.input_shape and len(t.input_shape) > 1
                and t.input_shape[1] is None]  # fmt: skip
    if variable:
        names = ", ".join(t.path for t in variable)
        notes.append(
            f"OUT keeps {len(variable)} TimeDistributed layer(s) on a variable axis ({names}): "
            "on Keras 3.15 its model.predict (and a traced export) on a new size of that axis "
            "stays wrong, as IN's is"
        )
    return notes


def rewrite(
    model: Any, out: str | None = None, *, inputs: Any = None, checks: int = DEFAULT_CHECKS,
    seq: Sequence[int] = DEFAULT_SEQ, batch: int = DEFAULT_BATCH, atol: ToleranceValue = None,
    rtol: ToleranceValue = None, seed: int = 0, unsafe: bool = False, force: bool = False,
    dry_run: bool = False, inference_only: bool = False, timing: bool = True,
    on_step: Callable[[str], None] | None = None, check_export: bool = True,
    equal_nan: bool = False, backend: str | None = None, keep_arrays: bool = False,
) -> RewriteResult:  # fmt: skip
    """Rewrite ``model`` (a Keras model or a saved-model path); write ``out`` if given.

    See the module docstring for the steps; ``result.model`` is the rewritten model.
    ``on_step`` is called with a short text before each slow step (a progress line).
    ``check_export``: once OUT is written, export the rewritten model (SavedModel, and
    ONNX with the onnx extra), run it and say whether it exports right (a note).
    ``atol``/``rtol``/``equal_nan``/``keep_arrays`` as in
    :func:`tdcheck.commands.models.compare_models`; ``backend``: the Keras backend, in this
    process only (exit 3 when it already runs Keras on another).
    """
    backend, owner = choose_backend(backend)
    if owner is not None:
        from tdcheck.errors import EnvironmentProblem

        raise EnvironmentProblem(
            f"rewrite: this process already runs Keras on {owner} (Keras picks its backend "
            f"once); rewrite on {backend} in a process of its own, e.g. "
            f"`tdcheck rewrite --backend {backend} ...`"
        )
    step = on_step or (lambda text: None)
    lost_compile: str | None = None  # IN had compile settings that cannot be carried over
    from tdcheck import files
    from tdcheck.engines import keras_rewrite as kr

    if out is not None and not dry_run:
        check_model_output(out)
        if not kr.is_keras_model(model) and _same_file(os.fspath(model), out):
            raise ConfigError(
                f"OUT {out!r} is IN: write the rewritten model to another file (IN stays the "
                "reference to compare it with)"
            )
    notes: list[str] = []
    if kr.is_keras_model(model):
        original, source = model, model.name
        compile_config = kr.compile_config_of(model)
    else:
        source = os.fspath(model)
        saved = read_model_file(source)  # one clear line for a file that is not a model at all
        use_here(backend)  # Keras, only once the file is known to be a model
        compile_config = saved.config.get("compile_config")
        if saved.compiled and not compile_config:
            lost_compile = "Keras cannot read them"
        step(f"loading {source}")
        original = None
        if saved.format == "h5":  # its compile settings are in training_config, in Keras' form
            try:
                original, loaded = kr.load_model_noted(source, unsafe=unsafe, compile=True)
                compile_config = kr.compile_config_of(original)
            except ConfigError as exc:  # a loss or metric Keras cannot rebuild: uncompiled
                original, lost_compile = None, getattr(exc, "reason", exc.message)
        if original is None:
            original, loaded = kr.load_model_noted(source, unsafe=unsafe)
        notes += loaded
    kr.check_graph_model(original, source)
    step("rebuilding without TimeDistributed")
    rewritten, done = kr.rebuild(original, inference_only=inference_only, unsafe=unsafe)

    sets = input_sets(original, inputs, checks=checks, seq=seq, batch=batch, seed=seed)
    names = kr.output_names(original)
    tolerance = tolerance_for_outputs(output_dtype(original), names, atol, rtol)
    log = ArrayLog(input_names=[n for n, _, _ in kr.input_specs(original)]) if keep_arrays else None
    stateful = kr.stateful_layers(original)
    if stateful:
        notes.append(
            f"IN is stateful ({', '.join(layer.name for layer in stateful)}; batch "
            f"{sets[0][1][0].shape[0]}): the states of both models are reset before every "
            "call and predict, so each check starts from the same zero state"
        )
    shadow_rule: str | None = None
    allowed: Allowed = {}
    shadow_checks: list[Check] = []
    if done.replaced:  # every reference output, before any predict runs
        specs = kr.input_specs(original)

        def longer(size: int) -> list[np.ndarray]:
            return random_inputs(specs, batch=batch, seq=[size, size + 2], seed=seed)

        references = {label: _reference(original, xs, label, f"the original model ({source})",
                                        longer) for label, xs in sets}  # fmt: skip
        if tolerance.source == "default" and tolerance.dtype in shadow.SHADOWED_DTYPES:
            step("the float64 clones of both models")
            try:
                twin = _Shadow(original, rewritten, unsafe)
                for label, xs in sets:
                    more, allowed[label] = twin.check(label, names, xs, references[label],
                                                      tolerance, log)  # fmt: skip
                    shadow_checks += more
                shadow_rule = shadow.rule_text(tolerance.dtype)
            except kr.CallFailed as exc:
                allowed, shadow_checks = {}, []
                notes.append(f"no float64 clone ({exc}): judged by atol/rtol alone")
    step("the original's predict on each input shape")
    labelled, _ = predict_findings(original, sets, names, tolerance, allowed=allowed,
                                   equal_nan=equal_nan)  # fmt: skip
    findings = [text for _, text in labelled]
    comparisons: list[Check] = []
    regressions: list[str] = []
    inherited: set[str] = set()
    same: list[Check] = []
    if done.replaced:
        for label, xs in sets:
            step(f"checking {label}")
            comparisons += judged_call(
                f"call {label}", names, rewritten, xs, references[label], tolerance,
                equal_nan=equal_nan, log=log, allowed=allowed.get(label),
            )  # fmt: skip
        comparisons += shadow_checks
        step("the rewritten model's predict on each input shape")
        after_findings, predict_checks = predict_findings(
            rewritten,
            sets,
            names,
            tolerance,
            reference=original,
            allowed=allowed,
            equal_nan=equal_nan,
            log=log,
        )
        # Where the original's predict already went wrong, the rewritten model is not judged
        # on it (layers kept as TimeDistributed can keep the bug); anywhere else it must agree.
        broken = {label for label, _ in labelled}
        inherited = broken & {label for label, _ in after_findings}
        comparisons += [c for c in predict_checks if c.check[len("predict ") :] not in inherited]
        for label, text in after_findings:
            if label in broken:
                notes.append(f"the rewritten model still has the original's problem: {text}")
            else:
                regressions.append(f"the rewritten model fails where the original did not: {text}")
        if findings and not after_findings:
            notes.append("the rewritten model's predict gives the right shapes on every input")
        notes += _notes_on_layers(done, inference_only)
        if tolerance.source == "default":  # --atol/--rtol judge by the user's rule alone
            step("the same computation in float64")
            same = same_computation_checks(
                original, rewritten, sets, names, notes, unsafe, equal_nan
            )

    first = sets[0][1]
    longest = max((xs for _, xs in sets), key=lambda xs: xs[0].size)  # timed at the largest
    shape = ", ".join(shape_text(x.shape) for x in longest)
    before = {"params": kr.count_params(original),
              "time_distributed": kr.count_time_distributed(original), "timing": {}}  # fmt: skip
    after = {"params": kr.count_params(rewritten),
             "time_distributed": kr.count_time_distributed(rewritten), "timing": {}}  # fmt: skip
    if timing and done.replaced:
        try:
            step(f"timing the original at {shape}")
            before["timing"] = kr.timings(original, longest)
            step(f"timing the rewritten model at {shape}")
            after["timing"] = kr.timings(rewritten, longest)
        except kr.CallFailed as exc:  # the checks already failed it
            before["timing"], after["timing"] = {}, {}
            notes.append(f"not timed: a model raised ({exc})")

    result = RewriteResult(
        source=source, out=out, replaced=done.replaced, kept=done.kept,
        comparisons=comparisons, tolerance=tolerance, findings=findings, before=before,
        regressions=regressions,
        after=after, timing_shape=f"input {shape}", dry_run=dry_run, model=rewritten,
        notes=notes, pass_rule=shadow_rule, still_wrong=bool(done.replaced and inherited),
        inference_only=any(t.verdict.verdict == rules.INFERENCE_ONLY for t in done.replaced),
        same_computation=same, backend=backend,
        params=params_by_layer(original, rewritten, log),
    )  # fmt: skip
    if equal_nan:
        result.notes.append("--equal-nan: NaNs in the same place (and equal infinities) agree")
    if done.replaced and out is not None and not dry_run and (result.passed or force):
        compile_note = kr.carry_compile(rewritten, compile_config)
        try:
            step(f"writing and reloading {out}")
            with files.atomic_path(out, suffix=".keras") as tmp:
                kr.save(rewritten, tmp)
                reloaded = kr.load_model(tmp, unsafe=unsafe)
                result.comparisons += judged_call(
                    "reloaded OUT", names, reloaded, first, references[sets[0][0]], tolerance,
                    equal_nan=equal_nan, log=log, allowed=allowed.get(sets[0][0]),
                )  # fmt: skip
                if not (result.passed or force):
                    raise _ReloadFailed
        except _ReloadFailed:
            result.notes.append("the saved file did not reload to the same outputs: not written")
            return _with_arrays(result, log)
        result.written = True
        if check_export:
            from tdcheck.commands.export import export_check

            step("checking the rewritten model's exports")
            result.notes.append(export_check(original, rewritten, seed=seed))
        if compile_note is None and lost_compile is not None:
            compile_note = (
                f"IN's compile settings could not be carried over ({lost_compile}); compile OUT "
                "before training"
            )
        result.notes.append(
            compile_note or "OUT has no compile settings (IN had none): compile it before training"
        )
    return _with_arrays(result, log)


def _with_arrays(result: RewriteResult, log: ArrayLog | None) -> RewriteResult:
    if log is not None:
        result.arrays, result.check_labels = log.arrays, log.labels
    return result


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # OUT does not exist yet
        return False


class _ReloadFailed(Exception):
    """The saved temp file reloads to different outputs: do not rename it into place."""


def check_model_output(out: str) -> None:
    """OUT must be a ``.keras`` path in an existing, writable folder (checked first)."""
    from tdcheck import files

    if not out.endswith(".keras"):
        raise ConfigError(f"OUT {out!r} must end in .keras (the format Keras rebuilds layers from)")
    files.check_file_output(out, "OUT")
