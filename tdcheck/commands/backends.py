"""Running a comparison on another backend, or on several, and comparing backends.

* :func:`run_compare` runs one configuration: in this process when its engine can load here
  (Keras not imported yet, or imported for that engine), else in a :class:`Worker`.
* With ``backends`` (``--backends tensorflow,jax``) it runs the configuration on every engine
  at once, one worker process each, and :func:`combine` makes one report: every engine's own
  comparisons (names ``variant@engine``), plus comparisons of kind ``cross-backend``, each
  variant's output (and gradients, trained outputs when computed) on every engine against the
  first engine's, judged with :func:`tdcheck.core.backends.cross_tolerances`.
* With ``baseline`` the run is judged against a saved archive (:mod:`tdcheck.core.baseline`).

Workers (:mod:`tdcheck.runners`) get the input as ``.npy`` and hand back the report as JSON
and the arrays as ``.npz`` in a private temporary directory, read with ``allow_pickle=False``.
Every verdict comes from :mod:`tdcheck.core.judge`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import numpy as np

from tdcheck.commands.session import Session
from tdcheck.core import baseline as baseline_io
from tdcheck.core.config import CompareConfig
from tdcheck.core.inputs import valid_positions
from tdcheck.core.judge import cross_tolerances_for, judge_arrays, relabel
from tdcheck.core.judge.cross import Side
from tdcheck.core.result import CompareRun, Comparison
from tdcheck.engines.base import weights_of
from tdcheck.errors import ConfigError
from tdcheck.runners.engine_runner import EngineRunner as _EngineRunner
from tdcheck.runners.worker import Worker


def run_compare(cfg: CompareConfig, x: np.ndarray) -> CompareRun:
    """Run a validated, resolved config (see :func:`tdcheck.commands.compare.prepare`)."""
    base = baseline_io.load(cfg.baseline, cfg.max_memory) if cfg.baseline is not None else None
    weights = None
    if base is not None:
        baseline_io.check_matches(base, cfg, x)
        weights = weights_of(base.arrays) or None
    run = run_across(cfg, x, weights) if cfg.backends else run_on_engine(cfg, x, weights)
    if base is not None:
        add_baseline_comparisons(run, base, cfg)
        if weights:
            run.notes.append(
                "--baseline: the model started from the baseline's weights (Keras's seeded "
                "random initializers draw other numbers on another backend)"
            )
    return run


def run_on_engine(
    cfg: CompareConfig, x: np.ndarray, weights: dict[str, np.ndarray] | None = None
) -> CompareRun:
    """Run on ``cfg.engine`` (from ``weights`` when given): here when possible, else in a
    worker process."""
    from tdcheck.engines.base import can_load_here, require_installed

    name = cfg.engine
    require_installed(name)
    if can_load_here(name):
        session = Session(engine=name)
        session.use_weights(weights)
        return session.run(cfg, x)
    with Worker(name) as worker:
        worker.submit(cfg, x, weights)
        return worker.result()


def engine_config(cfg: CompareConfig, engine: str) -> CompareConfig:
    """The config one engine of a ``--backends`` run gets."""
    return dataclasses.replace(
        cfg,
        backends=None,
        baseline=None,
        backend="tensorflow" if engine == "keras2" else engine,
        keras=2 if engine == "keras2" else 3,
    )


def run_across(
    cfg: CompareConfig, x: np.ndarray, weights: dict[str, np.ndarray] | None = None
) -> CompareRun:
    """Run on every engine of ``cfg.backends`` in parallel workers and combine the reports.

    Every engine must start from the same weights. The trunk's are NumPy-drawn, and constant
    head initializers agree everywhere, but Keras's seeded random initializers draw other
    numbers on each backend: an engine whose initial weights differ from the first engine's
    runs again (in the same worker, no new start-up) from the first engine's weights.
    """
    from tdcheck.engines.base import require_installed

    assert cfg.backends
    names = list(cfg.backends)
    for name in names:
        require_installed(name)
    notes = []
    with contextlib.ExitStack() as stack:
        workers = {name: stack.enter_context(Worker(name)) for name in names}
        for name, worker in workers.items():
            worker.submit(engine_config(cfg, name), x, weights)
        runs = {name: worker.result() for name, worker in workers.items()}
        reference = weights_of(runs[names[0]].arrays)
        rerun = [n for n in names[1:] if not _same(weights_of(runs[n].arrays), reference)]
        for name in rerun:
            workers[name].submit(engine_config(cfg, name), x, reference)
        for name in rerun:
            runs[name] = workers[name].result()
    if rerun:
        notes.append(
            f"--backends: {', '.join(rerun)} drew other initial weights than {names[0]} "
            f"(Keras's seeded random initializers differ per backend), so "
            f"{'they' if len(rerun) > 1 else 'it'} ran from {names[0]}'s weights"
        )
    run = combine(cfg, runs)
    run.notes[1:1] = notes
    return run


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def combine(cfg: CompareConfig, runs: dict[str, CompareRun]) -> CompareRun:
    """One report from one run per engine (the first is the reference)."""
    names = list(runs)
    first = runs[names[0]]
    comparisons: list[Comparison] = []
    for name, run in runs.items():
        comparisons += relabel(run.comparisons, name)
    tf32 = any(bool(run.environment.get("tf32")) for run in runs.values())
    devices = {run.environment.get("device") for run in runs.values()}
    atol, rtol = cross_tolerances_for(cfg, tf32=tf32 and len(devices) > 1)
    valid = valid_positions(cfg)
    reference = Side(first.arrays, first.environment)
    for name in names[1:]:
        comparisons += judge_arrays(
            runs[name].arrays, first.arrays, kind="cross-backend", atol=atol, rtol=rtol,
            exact=cfg.exact, label_a=f"@{name}", label_b=f"@{names[0]}", valid=valid,
            lengths=cfg.lengths is not None, variants=cfg.variants,
            sides=(Side(runs[name].arrays, runs[name].environment), reference), cfg=cfg,
        )  # fmt: skip
    environment = dict(first.environment)
    environment["backends"] = {name: run.environment for name, run in runs.items()}
    rule = (
        "bitwise identity"
        if cfg.exact
        else f"atol {atol:g}, rtol {rtol:g}"
        if cfg.atol is not None
        else "each side's allowance against the float64 reference, added (the head bounds "
        "from each side's head input, the scaled rule through the trunk, each side's "
        "tolerance for the trunk output)"
    )
    notes = [
        f"--backends: every variant on {', '.join(names[1:])} is compared with {names[0]} "
        f"(kind cross-backend) with {rule}"
        + (" (TF32 on a GPU side: its unit roundoff 2^-11)" if tf32 else "")
        + "; see docs/backends.md"
    ]
    for name, run in runs.items():
        notes += [f"{name}: {note}" for note in run.notes]
    arrays = dict(first.arrays)
    for name in names[1:]:
        arrays.update({f"backends/{name}/{k}": v for k, v in runs[name].arrays.items()})
    return CompareRun(
        config=cfg.to_dict(),
        environment=environment,
        layers=first.layers,
        total_params=first.total_params,
        comparisons=comparisons,
        notes=notes,
        training=first.training,
        power=first.power,
        arrays=arrays,
    )


def add_baseline_comparisons(
    run: CompareRun, base: baseline_io.Baseline, cfg: CompareConfig
) -> None:
    """Judge the run's outputs (and gradients, trained outputs) against the baseline's."""
    here, there = run.environment, base.environment
    tf32 = bool(here.get("tf32") or there.get("tf32")) and here.get("device") != there.get("device")
    atol, rtol = cross_tolerances_for(cfg, tf32=tf32)
    # One backend: its arrays. --backends: the first backend's, then each other's
    # (saved under backends/<name>/), named variant@backend.
    sources = [("", run.arrays)]
    if cfg.backends:
        sources = [(f"@{cfg.backends[0]}", run.arrays)] + [
            (f"@{name}", {k.split("/", 2)[2]: v for k, v in run.arrays.items()
                          if k.startswith(f"backends/{name}/")})
            for name in cfg.backends[1:]
        ]  # fmt: skip
    found = []
    environments: dict[str, Any] = here.get("backends") or {}
    baseline_side = Side(base.arrays, there)
    for label, arrays in sources:
        env = environments.get(label[1:], here) if label else here
        found += judge_arrays(
            arrays, base.arrays, kind="baseline", atol=atol, rtol=rtol, exact=cfg.exact,
            label_a=label, label_b="@baseline", valid=valid_positions(cfg),
            lengths=cfg.lengths is not None, variants=cfg.variants,
            sides=(Side(arrays, env), baseline_side), cfg=cfg,
        )  # fmt: skip
    if not found:
        raise ConfigError(f"--baseline: {cfg.baseline!r} holds no output this run computed")
    run.comparisons += found
    origin = baseline_io.describe(there)
    rule = (
        "bitwise identity"
        if cfg.exact
        else f"atol {atol:g}, rtol {rtol:g}"
        if cfg.atol is not None
        else "each side's allowance against the float64 reference, added (atol "
        f"{atol:g}, rtol {rtol:g} where the baseline lacks the arrays it needs)"
    )
    run.notes.append(
        f"--baseline: {len(found)} comparison(s) against {cfg.baseline} ({origin}) with {rule}"
        + (" (TF32 on one side: its unit roundoff 2^-11)" if tf32 else "")
    )


class EngineRunner(_EngineRunner):
    """:class:`tdcheck.runners.engine_runner.EngineRunner` with compare's :class:`Session` for
    the engine that loads in this process (``tdcheck sweep``)."""

    def __init__(self) -> None:
        super().__init__(lambda engine: Session(engine=engine))


def merge_environment(target: dict[str, Any], env: dict[str, Any]) -> None:
    """Add a case's environment to a sweep's: the first one, then under ``backends`` one per
    backend once a second backend appears (the sweep's environment names every backend).
    ``accumulation`` is left out: it belongs to one case (its dtype and head shape)."""
    env = {key: value for key, value in env.items() if key != "accumulation"}
    if not target:
        target.update(env)
        return
    first, name = target.get("backend", "tensorflow"), env.get("backend", "tensorflow")
    if name == first and "backends" not in target:
        return
    backends = target.setdefault("backends", {first: dict(target)})
    backends.setdefault(name, env)
