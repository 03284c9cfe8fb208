"""``tdcheck bench``: what each variant costs, and how that grows with the sequence length.

Keras 3's ``TimeDistributed`` loops over timesteps when the length is static and uses
``vectorized_map`` when it is dynamic, where Keras 2 reshaped to ``batch x time`` and called the
inner layer once (keras-team/keras#21179). This module times every variant on the same inputs:

* **what**: the heads alone (input ``(batch, seq, hidden)``, as the trunk would give), or with
  ``with_trunk`` the whole model (trunk + head);
* **backend**: ``tensorflow``, ``jax`` or ``torch`` (``--backend``; default ``$KERAS_BACKEND``,
  else tensorflow). Keras picks its backend once per process, so a backend other than the one
  this process can load runs in a worker process (:class:`tdcheck.runners.worker.Worker`);
* **how** (:data:`BACKEND_MODES`): ``eager`` (Keras call) on every backend; on TensorFlow
  ``graph`` (``tf.function``) or ``xla`` (``jit_compile=True``), with a ``static``
  (``TensorSpec([batch, seq, d])``) or ``dynamic`` (``[batch, None, d]``) time dimension; on
  JAX ``jit`` (``jax.jit`` over ``stateless_call``), which traces each concrete shape, so it
  runs ``static`` only; eager always sees a concrete length, so eager runs only ``static``;
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

from tdcheck.core.backends import default_backend
from tdcheck.core.config import CompareConfig, check_choice
from tdcheck.errors import ConfigError

MODES = ("eager", "graph", "xla", "jit")
#: The modes each backend offers. torch.compile is not offered: see docs/backends.md.
BACKEND_MODES = {
    "tensorflow": ("eager", "graph", "xla"),
    "jax": ("eager", "jit"),
    "torch": ("eager",),
}
#: ``--mode`` when not given: eager and the backend's compiled mode.
DEFAULT_MODES = {"tensorflow": ("eager", "graph"), "jax": ("eager", "jit"), "torch": ("eager",)}
#: Backends whose compiled mode can trace an unknown length (``--time-dim dynamic``).
DYNAMIC_BACKENDS = ("tensorflow",)
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

    @property
    def backend(self) -> str:
        """The Keras backend bench runs on (``$KERAS_BACKEND`` when the config names none)."""
        return self.config.backend or default_backend()

    def validated(self) -> BenchPlan:
        """Check everything before anything loads (``ConfigError``, exit 2)."""
        if self.config.backends is not None or self.config.keras != 3:
            raise ConfigError("bench times one Keras 3 backend: use --backend")
        backend = self.backend
        check_choice("--backend", backend, tuple(BACKEND_MODES))
        modes = BACKEND_MODES[backend]
        for name, values, choices in (
            ("--mode", self.modes, modes),
            ("--time-dim", self.time_dims, TIME_DIMS),
        ):
            if not values:
                raise ConfigError(f"{name}: give at least one value")
            for value in values:
                if name == "--mode" and value in MODES and value not in modes:
                    raise ConfigError(
                        f"--mode {value}: not available on the {backend} backend; "
                        f"choose from {', '.join(modes)}"
                    )
                check_choice(name, value, choices)
        if "dynamic" in self.time_dims and backend not in DYNAMIC_BACKENDS:
            raise ConfigError(
                f"--time-dim dynamic: not available on the {backend} backend (an unknown length "
                "is TensorFlow's tf.function trace; jax.jit traces each concrete length)"
            )
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
        from tdcheck.core.result import SCHEMA_VERSION, to_jsonable

        results = [t.to_dict() for t in self.results]
        failed = failed_results(results)
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "bench",
                "passed": self.equivalent and not failed,
                "verdict": bench_verdict(self.equivalent, results, failed),
                "failed": failed,
                "equivalent": self.equivalent,
                "equivalence": self.equivalence,
                "config": self.config,
                "plan": self.plan,
                "environment": self.environment,
                "results": results,
                "reference": [t.to_dict() for t in self.references],
                "notes": self.notes,
            }
        )


def failed_results(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timings that do not count: a variant that raised in its cell, or whose output
    differs from dense's there (``matches_dense`` False). ``problem``: ``raised`` or
    ``differs from dense``."""
    out = []
    for r in results:
        if r.get("error") or r.get("matches_dense") is False:
            problem = "raised" if r.get("error") else "differs from dense"
            cell = {k: r[k] for k in ("variant", "mode", "time_dim", "seq", "batch")}
            out.append({**cell, "problem": problem, "error": r.get("error")})
    return out


#: How many failed timings the verdict line names (the JSON's ``failed`` lists them all).
VERDICT_LISTED = 4


def bench_verdict(
    equivalent: bool, results: Sequence[dict[str, Any]], failed: Sequence[dict[str, Any]]
) -> str:
    """One line: PASSED, or FAILED with the pre-check and the timings that raised or differ.

    >>> r = {"variant": "time-distributed", "mode": "graph", "time_dim": "dynamic",
    ...      "seq": 10, "batch": 32, "problem": "raised"}
    >>> bench_verdict(True, [r, r], [r])
    'FAILED: 1 of 2 timings did not count: time-distributed raised in graph dynamic seq=10 batch=32'
    """
    if not failed and equivalent:
        if all(r.get("matches_dense") for r in results):
            return f"PASSED: every variant ran and matched dense in all {len(results)} timings"
        return (
            f"PASSED: every variant ran in all {len(results)} timings (outputs not compared "
            "with dense: --backward times gradients)"
        )
    parts = [] if equivalent else ["the variants are NOT equivalent (pre-check)"]
    if failed:
        named = [
            f"{f['variant']} {f['problem']} in {f['mode']} {f['time_dim']} seq={f['seq']} "
            f"batch={f['batch']}"
            for f in failed[:VERDICT_LISTED]
        ]
        more = len(failed) - VERDICT_LISTED
        parts.append(
            f"{len(failed)} of {len(results)} timings did not count: {', '.join(named)}"
            + (f" and {more} more (JSON: failed)" if more > 0 else "")
        )
    return "FAILED: " + "; ".join(parts)


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


def bench(plan: BenchPlan, *, on_cell: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report document of a validated plan: run here when this process can load the
    plan's backend, else in a worker process started for it (``on_cell`` is not called
    there: the worker reports only its finished result)."""
    from tdcheck.engines.base import can_load_here, require_installed

    require_installed(plan.backend)
    if can_load_here(plan.backend):
        return run_bench(plan, on_cell=on_cell).to_dict()
    from tdcheck.runners.worker import Worker

    with Worker(plan.backend) as worker:
        worker.submit_bench(plan_to_dict(plan))
        return worker.bench_result()


def plan_to_dict(plan: BenchPlan) -> dict[str, Any]:
    """A JSON-ready plan (what a worker receives)."""
    return {
        "config": plan.config.to_dict(), "seqs": list(plan.seqs), "batches": list(plan.batches),
        "modes": list(plan.modes), "time_dims": list(plan.time_dims), "repeats": plan.repeats,
        "warmup": plan.warmup, "backward": plan.backward, "with_trunk": plan.with_trunk,
    }  # fmt: skip


def plan_from_dict(doc: dict[str, Any]) -> BenchPlan:
    """The inverse of :func:`plan_to_dict`, validated again."""
    from tdcheck.runners.protocol import config_from_dict

    return BenchPlan(
        config=config_from_dict(doc["config"]),
        seqs=tuple(int(v) for v in doc["seqs"]),
        batches=tuple(int(v) for v in doc["batches"]),
        modes=tuple(str(v) for v in doc["modes"]),
        time_dims=tuple(str(v) for v in doc["time_dims"]),
        repeats=int(doc["repeats"]), warmup=int(doc["warmup"]),
        backward=bool(doc["backward"]), with_trunk=bool(doc["with_trunk"]),
    ).validated()  # fmt: skip


def run_bench(
    plan: BenchPlan,
    *,
    clock: Clock = time.perf_counter,
    on_cell: Callable[[str], None] | None = None,
) -> BenchResult:
    """Check equivalence, then time every variant and the reference in every cell, in this
    process (its backend must be loadable here; :func:`bench` chooses)."""
    from tdcheck.commands.compare import prepare
    from tdcheck.commands.session import Session
    from tdcheck.engines.base import quiet
    from tdcheck.engines.keras3 import to_numpy

    session = Session(engine=plan.backend)
    engine = session.engine
    cfg = plan.config
    device = engine.select_devices(cfg.device)[0]

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
            "backend": plan.backend,
        },
        environment=engine.bench_environment(device),
        equivalence=equivalence,
    )  # fmt: skip
    if not check.passed:
        result.notes.append(
            "the variants are NOT equivalent in this configuration: the timings compare "
            "different computations"
        )
    if "eager" in plan.modes and "dynamic" in plan.time_dims:
        result.notes.append("eager mode always sees a concrete length: it runs static only")
    if "jit" in plan.modes:
        result.notes.append(
            "jit: jax.jit traces and compiles once per input shape; first call is that cost"
        )
    sync = engine.bench_sync(device)
    timing: dict[str, Any] = {"repeats": plan.repeats, "warmup": plan.warmup, "clock": clock}
    rng = np.random.default_rng(cfg.seed)
    dtype = engine.input_dtype(built)
    units = cfg.units
    in_features = int(built.model.inputs[0].shape[-1])
    for mode, dim, seq, batch in plan.cells():
        if on_cell is not None:
            on_cell(f"{mode} {dim} seq={seq} batch={batch}")
        flops = 2 * batch * seq * d * units
        shape = (batch, seq if dim == "static" else None, in_features)
        with quiet(), engine.on(device):
            x = engine.bench_tensor(
                rng.standard_normal((batch, seq, in_features)).astype(dtype), device
            )
            dense_out = None
            for index, variant in enumerate(cfg.variants):
                fn = engine.bench_function(built, index, mode, shape, plan.backward)
                try:
                    first, times, out = time_calls(fn, (x,), sync, **timing)
                except Exception as exc:  # e.g. a Keras bug on the dynamic path
                    error = engine.error_text(exc)
                    result.results.append(
                        Timing(variant, mode, dim, seq, batch, [], 0.0, flops, error=error)
                    )
                    result.notes.append(f"{variant} raised in {mode} {dim} seq={seq}: {error}")
                    continue
                timing_row = Timing(variant, mode, dim, seq, batch, times, first, flops)
                if not plan.backward:
                    y = to_numpy(out)
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
            a = engine.bench_tensor(rng.standard_normal((batch * seq, d)).astype(dtype), device)
            w = engine.bench_tensor(rng.standard_normal((d, units)).astype(dtype), device)
            ref = engine.bench_matmul(mode, plan.backward)
            first, times, _ = time_calls(ref, (a, w), sync, **timing)
            result.references.append(Timing(REFERENCE, mode, dim, seq, batch, times, first, flops))
    apply_ratios(result.results, result.references)
    return result


def _matches(y: np.ndarray, dense: np.ndarray, cfg: CompareConfig) -> bool:
    """Same shape and within the configuration's tolerances."""
    from tdcheck.core.stats import compare_arrays

    atol, rtol = cfg.tolerances()
    return bool(compare_arrays(y, dense, atol=atol, rtol=rtol).passed)
