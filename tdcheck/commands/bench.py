"""``tdcheck bench``: what each variant costs, and how that grows with the sequence length.

Keras 3's ``TimeDistributed`` loops over timesteps when the length is static and uses
``vectorized_map`` when it is dynamic, where Keras 2 reshaped to ``batch x time`` and called the
inner layer once (keras-team/keras#21179). This module times every variant on the same inputs:

* **what**: the heads alone (input ``(batch, seq, hidden)``, as the trunk would give), or with
  ``with_trunk`` the whole model (trunk + head);
* **how**: ``eager`` (Keras call), ``graph`` (``tf.function``) or ``xla`` (``jit_compile=True``),
  with a ``static`` (``TensorSpec([batch, seq, d])``) or ``dynamic`` (``[batch, None, d]``) time
  dimension; eager always sees a concrete length, so eager runs only ``static``;
* **method**: the first call (tracing and compiling in graph/xla) is timed on its own and
  reported as ``trace_s``; then ``warmup`` calls are discarded and ``repeats`` calls are timed
  one by one (the device is synchronised after each); results are min, median, max.
* **figures**: each variant's median as a ratio to ``dense`` in the same cell; throughput in
  timesteps per second (``batch * seq / median``); efficiency against a reference ``tf.matmul``
  of the same FLOPs (``(batch*seq, d) @ (d, units)``) timed the same way on the same device.

The clock is injectable (``clock=``), so tests check the arithmetic with exact timings.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.config import CompareConfig, check_choice
from tdcheck.errors import ConfigError

MODES = ("eager", "graph", "xla")
TIME_DIMS = ("static", "dynamic")
REFERENCE = "matmul"
#: Caps on the count options (documented in --help): each is far beyond a useful run.
MAX_REPEATS = 10_000
MAX_WARMUP = 1_000
MAX_CELLS = 1_000

Clock = Callable[[], float]


@dataclass(frozen=True)
class BenchPlan:
    """What to time: the model options plus the scaling lists and the method."""

    config: CompareConfig
    seqs: tuple[int, ...]
    batches: tuple[int, ...]
    modes: tuple[str, ...] = ("eager",)
    time_dims: tuple[str, ...] = ("static",)
    repeats: int = 20
    warmup: int = 3
    backward: bool = False
    with_trunk: bool = False

    def validated(self) -> BenchPlan:
        for name, values, choices in (
            ("--mode", self.modes, MODES),
            ("--time-dim", self.time_dims, TIME_DIMS),
        ):
            if not values:
                raise ConfigError(f"{name}: give at least one value")
            for value in values:
                check_choice(name, value, choices)
        for name, sizes in (("--seq", self.seqs), ("--batch", self.batches)):
            if not sizes or any(v <= 0 for v in sizes):
                raise ConfigError(f"{name}: sizes must be > 0 (got {list(sizes)})")
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise ConfigError(f"--repeats: must be 1..{MAX_REPEATS} (got {self.repeats})")
        if not 0 <= self.warmup <= MAX_WARMUP:
            raise ConfigError(f"--warmup: must be 0..{MAX_WARMUP} (got {self.warmup})")
        cells = len(self.modes) * len(self.time_dims) * len(self.seqs) * len(self.batches)
        if cells > MAX_CELLS:
            raise ConfigError(
                f"bench: {cells} cells (modes x time dims x seqs x batches); at most {MAX_CELLS}"
            )
        if "dense" not in self.config.variants:
            raise ConfigError(
                "--variants: bench needs 'dense' among the variants (ratios are to it)"
            )
        config = self.config.validated()
        if config.device == "both":
            raise ConfigError("--device both is for compare; bench one device at a time")
        for seq in self.seqs:
            for batch in self.batches:
                dataclasses.replace(config, seq=seq, batch=batch).resolve_sizes(None).check_memory()
        return dataclasses.replace(self, config=config.resolve_sizes(None))

    def cells(self) -> list[tuple[str, str, int, int]]:
        """``(mode, time_dim, seq, batch)`` in report order; eager runs static only."""
        return [
            (mode, dim, seq, batch)
            for mode in self.modes
            for dim in self.time_dims
            if not (mode == "eager" and dim == "dynamic")
            for seq in self.seqs
            for batch in self.batches
        ]


@dataclass
class Timing:
    """One timed callable in one cell."""

    variant: str
    mode: str
    time_dim: str
    seq: int
    batch: int
    times: list[float]
    trace_s: float
    flops: int
    ratio_to_dense: float | None = None
    efficiency: float | None = None
    error: str | None = None
    #: Whether this cell's output matched dense's (None: not checked, e.g. --backward).
    matches_dense: bool | None = None

    @property
    def min_s(self) -> float | None:
        return min(self.times) if self.times else None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def max_s(self) -> float | None:
        return max(self.times) if self.times else None

    @property
    def throughput(self) -> float | None:
        """Timesteps per second at the median."""
        median = self.median_s
        if median is None:
            return None
        return self.batch * self.seq / median if median > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "mode": self.mode,
            "time_dim": self.time_dim,
            "seq": self.seq,
            "batch": self.batch,
            "min_s": self.min_s,
            "median_s": self.median_s,
            "max_s": self.max_s,
            "ratio_to_dense": self.ratio_to_dense,
            "throughput": self.throughput,
            "efficiency": self.efficiency,
            "trace_s": self.trace_s,
            "repeats": len(self.times),
            "flops": self.flops,
            "error": self.error,
            "matches_dense": self.matches_dense,
        }


@dataclass
class BenchResult:
    """All timings, the reference matmul timings, and the equivalence pre-check."""

    config: dict[str, Any]
    plan: dict[str, Any]
    environment: dict[str, Any]
    equivalence: dict[str, Any]
    results: list[Timing] = field(default_factory=list)
    references: list[Timing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def equivalent(self) -> bool:
        return bool(self.equivalence.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        from tdcheck.reports.result import SCHEMA_VERSION, to_jsonable

        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "bench",
                "equivalent": self.equivalent,
                "equivalence": self.equivalence,
                "config": self.config,
                "plan": self.plan,
                "environment": self.environment,
                "results": [t.to_dict() for t in self.results],
                "reference": [t.to_dict() for t in self.references],
                "notes": self.notes,
            }
        )


def apply_ratios(results: Sequence[Timing], references: Sequence[Timing]) -> None:
    """Fill ``ratio_to_dense`` (median / dense median in the same cell) and ``efficiency``
    (reference matmul median / median)."""

    def cell(t: Timing) -> tuple[str, str, int, int]:
        return (t.mode, t.time_dim, t.seq, t.batch)

    dense = {cell(t): t.median_s for t in results if t.variant == "dense"}
    matmul = {cell(t): t.median_s for t in references}
    for t in results:
        median = t.median_s
        if median is None:  # this variant could not run in this cell
            continue
        base = dense.get(cell(t))
        t.ratio_to_dense = median / base if base else None
        ref = matmul.get(cell(t))
        t.efficiency = ref / median if ref is not None and median > 0 else None


def time_calls(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    sync: Callable[[Any], None],
    *,
    repeats: int,
    warmup: int,
    clock: Clock,
) -> tuple[float, list[float], Any]:
    """``(first call s, [timed call s], last result)`` of ``fn(*args)``; warm-ups not timed."""
    start = clock()
    out = fn(*args)
    sync(out)
    first = clock() - start
    for _ in range(warmup):
        sync(fn(*args))
    times = []
    for _ in range(repeats):
        start = clock()
        out = fn(*args)
        sync(out)
        times.append(clock() - start)
    return first, times, out


def run_bench(
    plan: BenchPlan,
    *,
    clock: Clock = time.perf_counter,
    on_cell: Callable[[str], None] | None = None,
) -> BenchResult:
    """Check equivalence, then time every variant and the reference in every cell."""
    from tdcheck.commands.compare import Session, prepare
    from tdcheck.engines.tensorflow import environment, error_text, quiet, select_devices

    session = Session()
    tf, keras = session.tf, session.keras
    cfg = plan.config
    device = select_devices(tf, cfg.device)[0]

    # Equivalence first, on the smallest cell, as compare would judge it.
    check_cfg = dataclasses.replace(
        cfg, seq=min(plan.seqs), batch=min(plan.batches),
        rnn=cfg.rnn if plan.with_trunk else "none",
        features=cfg.features if plan.with_trunk else cfg.head_input_size,
    )  # fmt: skip
    resolved, x_check = prepare(check_cfg)
    check = session.run(resolved, x_check)
    equivalence = {
        "passed": check.passed,
        "verdict": check.verdict(),
        "seq": resolved.seq,
        "batch": resolved.batch,
    }
    built = session.model(resolved, device)
    d = resolved.head_input_size
    result = BenchResult(
        config=resolved.to_dict(),
        plan={
            "seqs": list(plan.seqs), "batches": list(plan.batches), "modes": list(plan.modes),
            "time_dims": list(plan.time_dims), "repeats": plan.repeats, "warmup": plan.warmup,
            "backward": plan.backward, "with_trunk": plan.with_trunk,
            "what": "trunk + head" if plan.with_trunk else "head only",
        },
        environment={
            **environment(tf, keras, device), **_threads(tf),
            "device_name": _device_name(tf, device),
        },
        equivalence=equivalence,
    )  # fmt: skip
    if not check.passed:
        result.notes.append(
            "the variants are NOT equivalent in this configuration: the timings compare "
            "different computations"
        )
    if "eager" in plan.modes and "dynamic" in plan.time_dims:
        result.notes.append("eager mode always sees a concrete length: it runs static only")
    sync = _syncer(tf, device)
    timing: dict[str, Any] = {"repeats": plan.repeats, "warmup": plan.warmup, "clock": clock}
    rng = np.random.default_rng(cfg.seed)
    dtype = built.model.inputs[0].dtype
    units = cfg.units
    for mode, dim, seq, batch in plan.cells():
        if on_cell is not None:
            on_cell(f"{mode} {dim} seq={seq} batch={batch}")
        in_features = built.model.inputs[0].shape[-1]
        x = tf.constant(rng.standard_normal((batch, seq, in_features)).astype(dtype))
        flops = 2 * batch * seq * d * units
        spec = tf.TensorSpec([batch, seq if dim == "static" else None, in_features], dtype)
        with quiet(), tf.device(device):
            dense_out = None
            for index, variant in enumerate(cfg.variants):
                sub = keras.Model(built.model.inputs, built.model.outputs[index])
                fn = _callable(tf, sub, mode, spec, plan.backward)
                try:
                    first, times, out = time_calls(fn, (x,), sync, **timing)
                except Exception as exc:  # e.g. a Keras bug on the dynamic path
                    error = error_text(exc)
                    result.results.append(
                        Timing(variant, mode, dim, seq, batch, [], 0.0, flops, error=error)
                    )
                    result.notes.append(f"{variant} raised in {mode} {dim} seq={seq}: {error}")
                    continue
                timing_row = Timing(variant, mode, dim, seq, batch, times, first, flops)
                if not plan.backward:
                    y = np.asarray(out)
                    if variant == "dense":
                        dense_out = y
                    elif dense_out is not None:
                        timing_row.matches_dense = _matches(y, dense_out, cfg)
                        if not timing_row.matches_dense:
                            result.notes.append(
                                f"{variant} in {mode} {dim} seq={seq} batch={batch} does not match "
                                f"dense (output shape {y.shape} vs {dense_out.shape}): its timing "
                                "is of a different computation"
                            )
                    if variant == "dense":
                        timing_row.matches_dense = True
                result.results.append(timing_row)
            a = tf.constant(rng.standard_normal((batch * seq, d)).astype(dtype))
            w = tf.constant(rng.standard_normal((d, units)).astype(dtype))
            ref = _matmul(tf, mode, plan.backward)
            first, times, _ = time_calls(ref, (a, w), sync, **timing)
            result.references.append(Timing(REFERENCE, mode, dim, seq, batch, times, first, flops))
    apply_ratios(result.results, result.references)
    return result


def _matches(y: np.ndarray, dense: np.ndarray, cfg: CompareConfig) -> bool:
    """Same shape and within the configuration's tolerances."""
    from tdcheck.core.stats import compare_arrays

    atol, rtol = cfg.tolerances()
    return bool(compare_arrays(y, dense, atol=atol, rtol=rtol).passed)


def _callable(tf: Any, model: Any, mode: str, spec: Any, backward: bool) -> Callable[[Any], Any]:
    def forward(x: Any) -> Any:
        return model(x, training=False)

    def forward_backward(x: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(loss, [x, *model.trainable_weights])

    body = forward_backward if backward else forward
    if mode == "eager":
        return body
    return tf.function(
        body, input_signature=[spec], jit_compile=mode == "xla", reduce_retracing=True
    )


def _matmul(tf: Any, mode: str, backward: bool) -> Callable[[Any, Any], Any]:
    def forward(a: Any, w: Any) -> Any:
        return tf.matmul(a, w)

    def forward_backward(a: Any, w: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch([a, w])
            loss = tf.reduce_sum(tf.cast(tf.matmul(a, w), tf.float32))
        return tape.gradient(loss, [a, w])

    body = forward_backward if backward else forward
    if mode == "eager":
        return body
    return tf.function(body, jit_compile=mode == "xla")


def _syncer(tf: Any, device: str) -> Callable[[Any], None]:
    if "GPU" in device:
        sync_devices = tf.test.experimental.sync_devices
        return lambda _: sync_devices()
    return lambda _: None  # CPU ops have finished when the call returns


def _threads(tf: Any) -> dict[str, Any]:
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
    }


def _device_name(tf: Any, device: str) -> str:
    if "GPU" in device:
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return str(details.get("device_name", gpus[0].name))
    import platform

    return platform.processor() or platform.machine()
