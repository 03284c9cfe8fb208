"""The Python API behind ``tdcheck rewrite``: replace TimeDistributed, prove it, time it.

1. Rebuild the model with each rewritable ``TimeDistributed(layer)`` replaced by
   ``layer`` (same name, same weights; :mod:`tdcheck.engines.keras_rewrite`).
2. Verify: original and rewritten called on the same random inputs (two or more
   sequence lengths, batch != length) and the user's, judged by
   :func:`tdcheck.core.judge.judge_outputs`; the rewritten model's ``predict`` on every
   length too. The ORIGINAL's ``predict`` on a second length is checked against its own
   eager call: Keras 3's TimeDistributed under a retraced ``predict`` maps over the batch
   axis (wrong shape when batch < length, an error when batch > length). That finding
   leads the report.
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
    input_sets,
    judged_call,
    output_dtype,
    reference_outputs,
)
from tdcheck.core.judge import Tolerance, judge_outputs, tolerance_for
from tdcheck.core.model_file import WrappedLayer, read_model_file
from tdcheck.core.result import SCHEMA_VERSION, Check, to_jsonable, verdict_text
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

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return (
            all(c.passed for c in self.comparisons)
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
        if self.regressions and text.startswith("EQUIVALENT"):
            text = f"NOT EQUIVALENT: {self.regressions[0]}"
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

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "command": "rewrite",
                "passed": self.passed,
                "exit_code": self.exit_code,
                "verdict": self.verdict(),
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
                "before": self.before,
                "after": self.after,
                "timing_shape": self.timing_shape,
                "notes": self.notes,
            }
        )


def predict_findings(
    model: Any, sets: Sequence[tuple[str, list[np.ndarray]]], names: Sequence[str],
    tolerance: Tolerance, reference: Any = None,
) -> tuple[list[tuple[str, str]], list[Check]]:  # fmt: skip
    """``predict`` from a fresh trace on one set per sequence length, against the eager
    call of ``reference`` (default: the model itself): wrong shapes and errors as
    findings (with the input set's label), the values as checks."""
    from tdcheck.engines import keras_rewrite as kr

    findings: list[tuple[str, str]] = []
    checks: list[Check] = []
    picked = _one_per_length(sets)
    results = kr.predict_series(model, [xs for _, xs in picked])
    for n, ((label, xs), got) in enumerate(zip(picked, results, strict=True)):
        when = "on its first call" if n == 0 else "on a new sequence length"
        length = xs[0].shape[1] if xs[0].ndim > 1 else "?"
        if isinstance(got, str):
            findings.append(
                (label, f"model.predict raises {when} (batch {xs[0].shape[0]}, length {length}): "
                 f"{got}")
            )  # fmt: skip
            continue
        expected = reference_outputs(
            model if reference is None else reference, xs, label, "the original model"
        )
        for name, y, want in zip(names, got, expected, strict=True):
            if y.shape != want.shape:
                findings.append((label,
                    f"model.predict gives the WRONG SHAPE {when}: {shape_text(y.shape)} instead "
                    f"of {shape_text(want.shape)} for output {name!r} (batch {xs[0].shape[0]}, "
                    f"length {length})"
                ))  # fmt: skip
        checks += judge_outputs(f"predict {label}", names, got, expected, tolerance)
    return findings, checks


def _one_per_length(
    sets: Sequence[tuple[str, list[np.ndarray]]],
) -> list[tuple[str, list[np.ndarray]]]:
    seen: set[tuple[int, ...]] = set()
    picked = []
    for label, xs in sets:
        key = tuple(x.shape[1] if x.ndim > 1 else -1 for x in xs)
        if key not in seen:
            seen.add(key)
            picked.append((label, xs))
    return picked


def rewrite(
    model: Any, out: str | None = None, *, inputs: Any = None, checks: int = DEFAULT_CHECKS,
    seq: Sequence[int] = DEFAULT_SEQ, batch: int = DEFAULT_BATCH, atol: float | None = None,
    rtol: float | None = None, seed: int = 0, unsafe: bool = False, force: bool = False,
    dry_run: bool = False, inference_only: bool = False, timing: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> RewriteResult:  # fmt: skip
    """Rewrite ``model`` (a Keras model or a saved-model path); write ``out`` if given.

    See the module docstring for the steps; ``result.model`` is the rewritten model.
    ``on_step`` is called with a short text before each slow step (a progress line).
    """
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
    if kr.is_keras_model(model):
        original, source = model, model.name
        compile_config = kr.compile_config_of(model)
    else:
        source = os.fspath(model)
        saved = read_model_file(source)  # one clear line for a file that is not a model at all
        compile_config = saved.config.get("compile_config")
        if saved.compiled and not compile_config:
            lost_compile = "Keras cannot read them"
        step(f"loading {source}")
        original = None
        if saved.format == "h5":  # its compile settings are in training_config, in Keras' form
            try:
                original = kr.load_model(source, unsafe=unsafe, compile=True)
                compile_config = kr.compile_config_of(original)
            except ConfigError as exc:  # a loss or metric Keras cannot rebuild: uncompiled
                original, lost_compile = None, str(exc).split(": ", 1)[-1]
        if original is None:
            original = kr.load_model(source, unsafe=unsafe)
    kr.check_graph_model(original, source)
    step("rebuilding without TimeDistributed")
    rewritten, done = kr.rebuild(original, inference_only=inference_only, unsafe=unsafe)

    sets = input_sets(original, inputs, checks=checks, seq=seq, batch=batch, seed=seed)
    names = kr.output_names(original)
    tolerance = tolerance_for(output_dtype(original), atol, rtol)
    step("the original's predict on each sequence length")
    labelled, _ = predict_findings(original, sets, names, tolerance)
    findings = [text for _, text in labelled]
    comparisons: list[Check] = []
    notes: list[str] = []
    regressions: list[str] = []
    if done.replaced:
        for label, xs in sets:
            step(f"checking {label}")
            expected = reference_outputs(original, xs, label, f"the original model ({source})")
            comparisons += judged_call(f"call {label}", names, rewritten, xs, expected, tolerance)
        step("the rewritten model's predict on each sequence length")
        after_findings, predict_checks = predict_findings(
            rewritten, sets, names, tolerance, reference=original
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
            notes.append("the rewritten model's predict gives the right shapes on every length")

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
        notes=notes,
    )  # fmt: skip
    if done.replaced and out is not None and not dry_run and (result.passed or force):
        compile_note = kr.carry_compile(rewritten, compile_config)
        try:
            step(f"writing and reloading {out}")
            with files.atomic_path(out, suffix=".keras") as tmp:
                kr.save(rewritten, tmp)
                reloaded = kr.load_model(tmp, unsafe=unsafe)
                result.comparisons += judged_call(
                    "reloaded OUT", names, reloaded, first,
                    reference_outputs(original, first, sets[0][0], "the original model"),
                    tolerance,
                )  # fmt: skip
                if not (result.passed or force):
                    raise _ReloadFailed
        except _ReloadFailed:
            result.notes.append("the saved file did not reload to the same outputs: not written")
            return result
        result.written = True
        if compile_note is None and lost_compile is not None:
            compile_note = (
                f"IN's compile settings could not be carried over ({lost_compile}); compile OUT "
                "before training"
            )
        result.notes.append(
            compile_note or "OUT has no compile settings (IN had none): compile it before training"
        )
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
