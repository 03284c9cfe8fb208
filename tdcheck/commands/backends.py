"""Running a comparison on another backend, or on several, and comparing backends.

* :func:`run_compare` runs one configuration: in this process when its engine can load here
  (Keras not imported yet, or imported for that engine), else in a :class:`Worker`.
* With ``backends`` (``--backends tensorflow,jax``) it runs the configuration on every engine
  at once, one worker process each, and :func:`combine` makes one report: every engine's own
  comparisons (names ``variant@engine``), plus comparisons of kind ``cross-backend``, each
  variant's output (and gradients, trained outputs when computed) on every engine against the
  first engine's, judged with :func:`tdcheck.core.backends.cross_tolerances`.
* With ``baseline`` the run is judged against a saved archive (:mod:`tdcheck.core.baseline`).

Workers get the input as ``.npy`` and hand back the report as JSON and the arrays as ``.npz``
in a private temporary directory, read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from tdcheck.core import baseline as baseline_io
from tdcheck.core import cross
from tdcheck.core.backends import cross_tolerances
from tdcheck.core.config import CompareConfig
from tdcheck.core.cross import Side
from tdcheck.core.stats import ArrayStats, compare_arrays
from tdcheck.engines.base import weights_of
from tdcheck.errors import EXIT_ENVIRONMENT, ConfigError, EnvironmentProblem, TdcheckError
from tdcheck.reports.result import ORACLE, Comparison

if TYPE_CHECKING:  # the engines are imported only when a run needs them
    from tdcheck.commands.compare import CompareRun

#: Array name prefixes compared across backends and with a baseline (never the oracle's).
COMPARED = ("outputs/", "gradients/", "trained/")


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
        from tdcheck.commands.compare import Session

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
    from tdcheck.commands.compare import CompareRun, valid_positions

    names = list(runs)
    first = runs[names[0]]
    comparisons: list[Comparison] = []
    for name, run in runs.items():
        for c in run.comparisons:
            a = c.a if c.a == ORACLE else f"{c.a}@{name}"
            b = c.b if c.b == ORACLE else f"{c.b}@{name}"
            comparisons.append(dataclasses.replace(c, a=a, b=b))
    tf32 = any(bool(run.environment.get("tf32")) for run in runs.values())
    devices = {run.environment.get("device") for run in runs.values()}
    atol, rtol = _tolerances(cfg, tf32=tf32 and len(devices) > 1)
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


def _tolerances(cfg: CompareConfig, *, tf32: bool) -> tuple[float, float]:
    if cfg.atol is not None and cfg.rtol is not None:
        return cfg.atol, cfg.rtol
    return cross_tolerances(cfg.dtype, tf32=tf32)


def judge_arrays(
    actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], *, kind: str, atol: float,
    rtol: float, exact: bool, label_a: str, label_b: str, valid: np.ndarray, lengths: bool,
    variants: tuple[str, ...], sides: tuple[Side, Side] | None = None,
    cfg: CompareConfig | None = None,
) -> list[Comparison]:  # fmt: skip
    """Compare every variant's output, gradient and trained output that both archives hold.

    With ``sides`` (each side's arrays and environment) and ``cfg``, every quantity is judged
    as within one backend: each side's allowance against the float64 reference, added
    (:mod:`tdcheck.core.cross`); ``--atol/--rtol`` given, or an array the allowance needs
    missing (an old baseline), judge with ``atol``/``rtol``; ``--exact``: bitwise.
    """
    comparisons = []
    bounded = sides is not None and cfg is not None and cfg.atol is None and not exact
    trunk = cfg is not None and cfg.rnn != "none"
    if bounded and trunk and "features" in actual and "features" in expected:
        assert sides is not None and cfg is not None
        allowed = cross.trunk_allowance(*sides, dtype=cfg.dtype)
        where = valid[..., None] if lengths else None
        stats = _stats(actual["features"], expected["features"], atol, rtol, exact, where,
                       allowed, "tolerance each side")  # fmt: skip
        comparisons.append(Comparison(kind, f"trunk{label_a}", f"trunk{label_b}", stats,
                                      "trunk output"))  # fmt: skip
    for key in sorted(expected):
        if not key.startswith(COMPARED) or key not in actual or "/oracle" in key:
            continue
        parts = key.split("/")
        if key.startswith(("trained/gradients/", "trained/targets")):
            continue  # what the training allowance is derived from, not a result
        if key.startswith("trained/outputs/"):
            variant, quantity = parts[2], "trained output"
        elif key.startswith("trained/"):
            variant, quantity = parts[1], f"trained {'/'.join(parts[2:])}"
        elif key.startswith("gradients/"):
            variant, quantity = parts[1], "/".join(parts[2:]) or "gradient"
        else:
            variant, quantity = parts[1], "output"
        if variant not in variants:  # the oracle, the cotangent R, another device's output
            continue
        where = None
        if lengths and quantity in ("output", "trained output"):
            where = valid[..., None]
        allowed, rule = None, "bound"
        if bounded and actual[key].shape == expected[key].shape:
            assert sides is not None and cfg is not None
            allowed, rule = _allowance(key, variant, quantity, expected[key], sides, cfg)
        stats = _stats(actual[key], expected[key], atol, rtol, exact, where, allowed, rule)
        comparisons.append(
            Comparison(kind, f"{variant}{label_a}", f"{variant}{label_b}", stats, quantity)
        )
    return comparisons


def _allowance(
    key: str, variant: str, quantity: str, expected: np.ndarray, sides: tuple[Side, Side],
    cfg: CompareConfig,
) -> tuple[np.ndarray | None, str]:  # fmt: skip
    """The allowed difference of one array across two runs, and its rule's name."""
    a, b = sides
    dtype, activation = cfg.dtype, cfg.activation
    if key.startswith("outputs/"):
        allowed = cross.output_allowance(a, b, variant, dtype=dtype, activation=activation)
        return allowed, cross.output_rule(cfg.head_input_size, a, b, dtype)
    if key.startswith("gradients/"):
        features = b.arrays.get("features")
        shape = np.shape(features) if features is not None else np.shape(expected)
        positions = int(np.prod(shape[:2]))
        if quantity in ("head.kernel", "head.bias"):
            allowed = cross.head_gradient_allowance(
                a, b, variant, quantity, dtype=dtype, activation=activation
            )
        else:
            allowed = cross.scaled_pair_allowance(a, b, expected, positions, dtype=dtype)
        return allowed, cross.gradient_rule(quantity, positions, a, b, dtype)
    if key.startswith("trained/"):
        total: np.ndarray | None = np.zeros(np.shape(expected))
        for side in (a, b):
            atol, rtol = cross.side_tolerances(side, dtype)
            own = cross.training_allowances(
                side.arrays, variant, optimizer=cfg.optimizer,
                learning_rate=cfg.learning_rate, dtype=side.precision(dtype), atol=atol,
                rtol=rtol, ftz=side.ftz(dtype),
            ).get(key)  # fmt: skip
            total = None if own is None or total is None else total + own
        return total, "training"
    return None, "bound"


def _stats(
    a: np.ndarray, b: np.ndarray, atol: float, rtol: float, exact: bool, where: Any,
    allowed: np.ndarray | None = None, rule: str = "bound",
) -> ArrayStats:  # fmt: skip
    if a.shape != b.shape:  # e.g. a backend whose head returned another length
        return ArrayStats(
            shape_a=tuple(a.shape), shape_b=tuple(b.shape), dtype_a=str(a.dtype),
            dtype_b=str(b.dtype), atol=atol, rtol=rtol, exact=exact, passed=False,
            total=int(b.size), mismatched=int(b.size), note="the shapes differ",
        )  # fmt: skip
    stats = compare_arrays(a, b, atol=atol, rtol=rtol, exact=exact, where=where, allowed=allowed)
    if allowed is not None and not exact:
        stats.rule = rule
    return stats


def add_baseline_comparisons(
    run: CompareRun, base: baseline_io.Baseline, cfg: CompareConfig
) -> None:
    """Judge the run's outputs (and gradients, trained outputs) against the baseline's."""
    from tdcheck.commands.compare import valid_positions

    here, there = run.environment, base.environment
    tf32 = bool(here.get("tf32") or there.get("tf32")) and here.get("device") != there.get("device")
    atol, rtol = _tolerances(cfg, tf32=tf32)
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


# -- worker processes -----------------------------------------------------------------------


class Worker:
    """A ``python -m tdcheck.commands.worker`` process for one engine (see that module).

    ``submit`` sends a request without waiting, so several workers run at once; ``result``
    waits for the answer. Used as a context manager it ends the process on exit.
    """

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self._tmp = tempfile.TemporaryDirectory(prefix="tdcheck-worker-")
        self._count = 0
        self._pending: Path | None = None
        self._stderr: IO[bytes] = open(Path(self._tmp.name) / "stderr.txt", "wb")  # noqa: SIM115
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "tensorflow" if engine == "keras2" else engine
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        debug = os.environ.get("TDCHECK_DEBUG", "") not in ("", "0")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tdcheck.commands.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else self._stderr,
            env=env,
            text=True,
        )

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)

    def submit(
        self, cfg: CompareConfig, x: np.ndarray, weights: dict[str, np.ndarray] | None = None
    ) -> None:
        directory = self._directory({"engine": self.engine, "config": cfg.to_dict()})
        np.save(directory / "input.npy", x, allow_pickle=False)
        if weights:
            from tdcheck.commands.worker import save_npz

            save_npz(directory / "weights.npz", weights)
        self._post(directory)

    def submit_bench(self, plan: dict[str, Any]) -> None:
        """Send a bench plan (:func:`tdcheck.commands.bench.plan_to_dict`) without waiting."""
        self._post(self._directory({"engine": self.engine, "bench": plan}))

    def _directory(self, request: dict[str, Any]) -> Path:
        """A new request directory holding ``request.json``."""
        self._count += 1
        directory = Path(self._tmp.name) / f"request-{self._count}"
        directory.mkdir()
        (directory / "request.json").write_text(json.dumps(request), encoding="utf-8")
        return directory

    def _post(self, directory: Path) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"dir": str(directory)}) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None
        self._pending = directory

    def result(self) -> CompareRun:
        """The finished run of the last request (raises its error, with its exit code)."""
        return read_result(self._reply())

    def bench_result(self) -> dict[str, Any]:
        """The bench report document of the last :meth:`submit_bench`."""
        return dict(json.loads((self._reply() / "result.json").read_text(encoding="utf-8")))

    def _reply(self) -> Path:
        """Wait for the answer to the last request; its directory (or its error raised)."""
        assert self._pending is not None and self._process.stdout is not None
        directory, self._pending = self._pending, None
        line = self._process.stdout.readline()
        if not line:
            raise self._died()
        reply = json.loads(line)
        if not reply.get("ok"):
            error = TdcheckError(f"{self.engine}: {reply.get('error', 'failed')}")
            error.exit_code = int(reply.get("exit_code", EXIT_ENVIRONMENT))
            raise error
        return directory

    def _died(self) -> EnvironmentProblem:
        code = self._process.wait()
        self._stderr.flush()
        tail = (Path(self._tmp.name) / "stderr.txt").read_text(errors="replace").strip()
        last = tail.splitlines()[-1][:300] if tail else "no message"
        how = f"exit {code}"
        if code < 0:
            with contextlib.suppress(ValueError):
                how = f"killed by {signal.Signals(-code).name}"
        return EnvironmentProblem(f"the {self.engine} worker ended ({how}): {last}")

    def close(self, abort: bool = False) -> None:
        """End the process. An idle worker exits when its stdin closes; one still busy with a
        request nobody will read (an interrupt, another worker's error) is terminated at once,
        and killed if it does not end within a few seconds (a hung or stopped worker)."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        busy = abort or self._pending is not None
        if busy and self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.terminate()
        try:
            self._process.wait(timeout=3 if busy else 30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stderr.close()
        self._tmp.cleanup()


def read_result(directory: Path) -> CompareRun:
    """A :class:`CompareRun` from a worker's ``result.json`` and ``arrays.npz``."""
    from tdcheck.commands.compare import CompareRun
    from tdcheck.commands.worker import CAST_KEY

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


class EngineRunner:
    """Runs configurations on whichever engine each names, reusing what it started: the
    engine that can load in this process runs here (one :class:`Session`), every other in one
    :class:`Worker` kept for the next configuration on it. ``tdcheck sweep`` with a
    ``--backend`` axis so pays one start-up per backend, not one per case."""

    def __init__(self) -> None:
        self._sessions: dict[str, Any] = {}
        self._workers: dict[str, Worker] = {}

    def __enter__(self) -> EngineRunner:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)

    def run(self, cfg: CompareConfig, x: np.ndarray) -> CompareRun:
        from tdcheck.engines.base import can_load_here, require_installed

        name = cfg.engine
        if name in self._sessions:
            return self._sessions[name].run(cfg, x)
        require_installed(name)
        if name not in self._workers and can_load_here(name):
            from tdcheck.commands.compare import Session

            self._sessions[name] = Session(engine=name)
            return self._sessions[name].run(cfg, x)
        if name not in self._workers:
            self._workers[name] = Worker(name)
        self._workers[name].submit(cfg, x)
        return self._workers[name].result()

    def close(self, abort: bool = False) -> None:
        for worker in self._workers.values():
            worker.close(abort=abort)
        self._workers.clear()


def merge_environment(target: dict[str, Any], env: dict[str, Any]) -> None:
    """Add a case's environment to a sweep's: the first one, then under ``backends`` one per
    backend once a second backend appears (the sweep's environment names every backend)."""
    if not target:
        target.update(env)
        return
    first, name = target.get("backend", "tensorflow"), env.get("backend", "tensorflow")
    if name == first and "backends" not in target:
        return
    backends = target.setdefault("backends", {first: dict(target)})
    backends.setdefault(name, env)
