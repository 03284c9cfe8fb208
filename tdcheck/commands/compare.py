"""The Python API behind ``tdcheck compare``.

>>> import tdcheck                                     # doctest: +SKIP
>>> result = tdcheck.compare(hidden=5, seq=3)          # doctest: +SKIP
>>> bool(result), result.total_params                  # doctest: +SKIP
(True, 224)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tdcheck.core import bounds, cross, faults, oracle
from tdcheck.core.config import CompareConfig
from tdcheck.core.inputs import load_npy, make_input
from tdcheck.core.stats import ArrayStats, compare_arrays
from tdcheck.core.tolerances import (
    compute_dtype,
    default_tolerances,
    largest_finite,
    overflow_threshold,
)
from tdcheck.engines import gradients
from tdcheck.engines.base import Engine, load_engine, load_weights
from tdcheck.engines.keras_model import TRUNK_WEIGHTS, BuiltModel
from tdcheck.errors import ConfigError
from tdcheck.reports.result import ORACLE, CompareResult, Comparison

T = TypeVar("T")


@dataclasses.dataclass
class CompareRun(CompareResult):
    """A :class:`CompareResult` that also holds the arrays (for ``--save-arrays``)."""

    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)


#: How the generated arrays in an archive were drawn, so a third party can redraw them.
GENERATORS = {
    "input": "--input random: numpy.random.default_rng(seed).standard_normal((batch, seq, "
    "features)); --input ones: numpy.ones; then zeroed after each row's --lengths",
    "gradients/R": "numpy.random.default_rng([seed, 0x6772]).standard_normal((batch, seq, "
    "units)) * valid[..., None]; loss L = sum(R * y)",
    "trained/targets": "numpy.random.default_rng([seed, 0x7472]).standard_normal((batch, seq, "
    "units)); loss sum(valid * (y - T)^2) / (count(valid) * units)",
    "valid": "numpy.arange(seq)[None, :] < numpy.asarray(lengths)[:, None] (all True "
    "without --lengths)",
}
META_KEY = "meta/report.json"


def archive(result: CompareRun) -> dict[str, np.ndarray]:
    """The arrays of ``--save-arrays``: every judged array, under the keys each comparison's
    ``arrays`` field names, plus ``meta/report.json``.

    bfloat16 (and other types NumPy cannot name) are stored as float32, exactly (every
    bfloat16 is a float32), with the original dtype in ``original_dtypes``. The report, the
    configuration, the environment and :data:`GENERATORS` are JSON in a uint8 array, so
    ``np.load(path, allow_pickle=False)`` reads everything.
    """
    out: dict[str, np.ndarray] = {}
    original: dict[str, str] = {}
    for key, value in result.arrays.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            original[key] = array.dtype.name
            array = array.astype(np.float32)
        out[key] = array
    meta = {"report": result.to_dict(), "original_dtypes": original, "generators": GENERATORS}
    out[META_KEY] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    return out


def prepare(config: CompareConfig | None = None, **options: Any) -> tuple[CompareConfig, Any]:
    """Validate options, read the input and check memory; no TensorFlow yet.

    Returns the resolved config and the input array (float64, padded positions zeroed).
    """
    cfg = dataclasses.replace(config, **options) if config else CompareConfig(**options)
    cfg = cfg.validated()
    if cfg.input in ("ones", "random"):
        cfg = cfg.resolve_sizes(None)
        assert cfg.batch and cfg.seq and cfg.features
        cfg.check_lengths()
        cfg.check_memory()
        x = make_input(
            cfg.input, batch=cfg.batch, seq=cfg.seq, features=cfg.features, seed=cfg.seed
        )
    else:
        x = load_npy(cfg.input, max_bytes=cfg.max_memory)
        cfg = cfg.resolve_sizes(tuple(x.shape))
        cfg.check_lengths()
        cfg.check_memory()
    check_input_range(x, cfg.dtype)
    return cfg, x * valid_positions(cfg)[..., None]


def check_input_range(x: np.ndarray, dtype: str) -> None:
    """Refuse input values that round to infinity in the compute dtype (exit 2).

    An input of 1e300 in float32 (or 100000 in float16) would become inf, every output NaN,
    and nothing would be judged: say which values, and which dtype, instead.
    """
    limit = overflow_threshold(dtype)
    magnitude = np.abs(np.asarray(x, np.float64))
    over = magnitude >= limit
    if over.any():
        compute = compute_dtype(dtype)
        first = tuple(int(i) for i in np.argwhere(over)[0])
        raise ConfigError(
            f"--input: {int(over.sum())} value(s) do not fit {compute}, the compute dtype of "
            f"--dtype {dtype} (largest magnitude {magnitude.max():g}, first at "
            f"{list(first)}; {compute} holds up to {largest_finite(dtype):g}): they would "
            "become inf"
        )


def valid_positions(cfg: CompareConfig) -> np.ndarray:
    """``(batch, seq)`` booleans: True where a timestep is within its row's length."""
    assert cfg.batch and cfg.seq
    if cfg.lengths is None:
        return np.ones((cfg.batch, cfg.seq), bool)
    return np.arange(cfg.seq)[None, :] < np.asarray(cfg.lengths)[:, None]


class _Judge:
    """Builds :class:`Comparison` objects with one tolerance setting.

    A comparison given an element-wise ``allowed`` difference (an error bound, see
    :mod:`tdcheck.core.bounds`) is judged by it, unless the user gave ``--atol/--rtol``
    (they override every bound) or ``--exact`` (variant pairs: bitwise).
    """

    def __init__(
        self, cfg: CompareConfig, valid: np.ndarray, arrays: dict[str, np.ndarray]
    ) -> None:
        self.arrays = arrays  # every judged array lands here, under its comparison's keys
        self.atol, self.rtol = cfg.tolerances()
        #: The precision the bounds assume: the dtype, or "tf32" (see _bound_precision).
        self.precision = cfg.dtype
        #: Whether the engine flushes subnormals in this dtype on this device (probed).
        self.ftz = False
        self.user_tolerances = cfg.atol is not None
        self.exact = cfg.exact
        self.equal_nan = cfg.equal_nan
        self.valid = valid
        self.comparisons: list[Comparison] = []

    def __call__(
        self, kind: str, a: str, b: str, actual: Any, expected: Any, quantity: str = "output",
        where: Any = None, allowed: Any = None, rule: str = "bound",
        keys: tuple[str, str] | None = None,
    ) -> Comparison:  # fmt: skip
        # --exact is for pairs of variants: a float32 output is never bitwise equal to the
        # float64 oracle, so the oracle stays judged with tolerances.
        stats = self.measure(a, b, actual, expected, where, allowed, rule)
        keys = keys or (f"{kind}/{quantity}/{a}", f"{kind}/{quantity}/{b}")
        for key, value in zip(keys, (actual, expected), strict=True):
            self.arrays.setdefault(key, np.asarray(value))
        comparison = Comparison(kind, a, b, stats, quantity, keys=keys)
        self.comparisons.append(comparison)
        return comparison

    def measure(
        self, a: str, b: str, actual: Any, expected: Any, where: Any = None,
        allowed: Any = None, rule: str = "bound",
    ) -> ArrayStats:  # fmt: skip
        """The statistics under this judge's rules, without recording a comparison."""
        exact = self.exact and ORACLE not in (a, b)
        use_bound = allowed is not None and not self.user_tolerances and not exact
        stats = compare_arrays(
            actual, expected, atol=self.atol, rtol=self.rtol, exact=exact, where=where,
            allowed=allowed if use_bound else None, equal_nan=self.equal_nan,
        )  # fmt: skip
        if use_bound:
            stats.rule = rule
        return stats

    def pair(
        self, kind: str, a: str, b: str, arrays: dict[str, np.ndarray], errors: dict[str, str],
        where: Any = None, allowed: dict[str, Any] | None = None, rule: str = "bound",
        keys: tuple[str, str] | None = None,
    ) -> Comparison:  # fmt: skip
        """Judge ``arrays[a]`` against ``arrays[b]``, or record that one of them raised.

        ``allowed`` maps a name to its own bound; a pair is allowed the sum of both.
        """
        failed = [name for name in (a, b) if name in errors]
        if not failed:
            bound = None
            if allowed is not None:
                bound = sum(allowed[name] for name in (a, b) if name in allowed)
            return self(kind, a, b, arrays[a], arrays[b], where=where, allowed=bound, rule=rule,
                        keys=keys)  # fmt: skip
        other = arrays.get(b if failed[0] == a else a)
        shape = tuple(other.shape) if other is not None else ()
        stats = ArrayStats(
            shape_a=shape if a not in errors else (), shape_b=shape if b not in errors else (),
            dtype_a="n/a", dtype_b="n/a", atol=self.atol, rtol=self.rtol, exact=self.exact,
            passed=False, total=int(np.prod(shape)) if shape else 0,
            mismatched=int(np.prod(shape)) if shape else 0,
            note=f"{failed[0]} raised {errors[failed[0]]}",
        )  # fmt: skip
        comparison = Comparison(kind, a, b, stats)
        self.comparisons.append(comparison)
        return comparison


def compare(config: CompareConfig | None = None, **options: Any) -> CompareRun:
    """Build the variants with the same weights, run them, and judge every pair.

    Accepts a :class:`CompareConfig` or its fields as keywords. Raises
    :class:`~tdcheck.errors.ConfigError` (bad input) or
    :class:`~tdcheck.errors.EnvironmentProblem` (e.g. ``device='gpu'`` without one).
    """
    cfg, x = prepare(config, **options)
    from tdcheck.commands.backends import run_compare

    return run_compare(cfg, x)


#: Config fields that change the model itself; batch, seq and the input do not.
_MODEL_FIELDS = (
    "features", "hidden", "units", "rnn", "initializer", "bias_initializer", "activation",
    "variants", "weights", "seed", "dtype",
)  # fmt: skip


class Session:
    """An engine (TensorFlow unless ``engine`` names another) loaded once, and models reused
    across configurations.

    A model's input is ``(None, features)``, so configurations that differ only in batch
    size, sequence length or input values run on the same built model (same seed, same
    weights) instead of building it again; ``tdcheck sweep`` relies on this.
    """

    def __init__(self, max_models: int = 16, engine: str = "tensorflow") -> None:
        self.engine: Engine = load_engine(engine)
        self.keras = self.engine.keras
        self.tf: Any = getattr(self.engine, "tf", None)  # TensorFlow's module, when on it
        self.max_models = max_models
        self._models: dict[tuple[Any, ...], BuiltModel] = {}
        #: Initial weights (``weights/...`` arrays) every new model takes instead of its own,
        #: e.g. a baseline's or another backend's; see :meth:`use_weights`.
        self.weights: dict[str, np.ndarray] | None = None
        self._weights_id = 0

    def use_weights(self, weights: dict[str, np.ndarray] | None) -> None:
        """Build models with these initial weights from now on (None: their own)."""
        self.weights = weights
        self._weights_id += 1

    def model(self, cfg: CompareConfig, device: str) -> BuiltModel:
        """The built model for ``cfg`` on ``device``, from the cache when possible."""
        key = (*(getattr(cfg, f) for f in _MODEL_FIELDS), cfg.lengths is not None, device)
        key += (self._weights_id if self.weights else 0,)
        built = self._models.pop(key, None)
        if built is None:
            built = self.engine.build(cfg, device)
            if self.weights:
                load_weights(built, self.weights)
            if len(self._models) >= self.max_models:
                self._models.pop(next(iter(self._models)))  # least recently used
        self._models[key] = built
        return built

    def run(self, cfg: CompareConfig, x: np.ndarray) -> CompareRun:
        """Compare for a validated, resolved ``cfg`` and its input (see :func:`prepare`)."""
        if cfg.tf32 != "default":
            self.engine.set_tf32(cfg.tf32 == "on")
        return _run(self, cfg, x)


def _run(session: Session, cfg: CompareConfig, x: np.ndarray) -> CompareRun:
    engine = session.engine
    devices = engine.select_devices(cfg.device)
    if cfg.deterministic:
        engine.set_deterministic()
    valid = valid_positions(cfg)
    where = valid[..., None] if cfg.lengths is not None else None
    reference = cfg.variants[0]
    notes: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    judge = _Judge(cfg, valid, arrays)
    training: dict[str, Any] | None = None

    built = session.model(cfg, devices[0])
    x_model = x.astype(engine.input_dtype(built))
    mask_kept = {
        v: getattr(t, "_keras_mask", None) is not None
        for v, t in zip(cfg.variants, built.model.outputs, strict=True)
    }
    errors: dict[str, str] = {}
    dynamic = cfg.time_dim == "dynamic"
    if dynamic:
        outputs, errors, used_device = engine.dynamic_outputs(built, x_model, devices[0])
        notes.append(
            "--time-dim dynamic: each head ran in tf.function traced with an unknown "
            "sequence length, so TimeDistributed takes its vectorized_map path "
            "(gradients and training still run eagerly)"
        )
    else:
        tensors, used_device = engine.forward(built, x_model, devices[0])
        outputs = dict(zip(cfg.variants, tensors, strict=True))
    head_input = engine.head_input(built, x_model, devices[0], dynamic=dynamic)
    judge.precision = _bound_precision(engine, cfg.dtype, used_device)
    judge.ftz = cross.Side({}, {"flush_to_zero": engine.flush_to_zero(used_device)}).ftz(
        judge.precision
    )
    if judge.precision == "tf32":
        notes.append(
            "TensorFloat-32 is enabled on this GPU: float32 matrix products round their inputs "
            "to 10 fraction bits, so the bounds use u = 2^-11 for them"
        )
    heads = {v: built.canonical_head_weights(v) for v in cfg.variants}
    bounds_out = output_bounds(cfg, head_input, heads, judge.precision, judge.ftz)
    out_rule = bounds.output_rule(cfg.head_input_size, judge.precision)

    arrays["input"] = x_model
    arrays["valid"] = valid
    arrays["features"] = head_input
    arrays.update({f"outputs/{v}": out for v, out in outputs.items()})
    for v in cfg.variants[1:]:
        judge.pair("output", v, reference, outputs, errors, where=where, allowed=bounds_out,
                   rule=out_rule, keys=(f"outputs/{v}", f"outputs/{reference}"))  # fmt: skip

    keras_mask = oracle.keras_mask(x_model) if cfg.lengths is not None else None
    features64 = oracle_outputs = None
    if cfg.oracle:
        trunk = built.trunk_weights()
        features64 = oracle.features(x_model, cfg.rnn, trunk, mask=keras_mask)
        if cfg.rnn != "none":
            # The trunk runs once and feeds every head: its error is common to all of them,
            # so it is judged on its own, with the dtype's tolerance (no useful a-priori bound
            # exists for a recurrence; see docs/checks.md).
            # With TF32 on, its unit roundoff: the float32 tolerance scaled to TF32's
            # (core.cross.side_tolerances, as across backends and devices).
            trunk_allowed, trunk_rule = None, "bound"
            if judge.precision == "tf32":
                atol, rtol = cross.side_tolerances(
                    cross.Side({}, {"device": used_device, "tf32": True}), cfg.dtype
                )
                trunk_allowed = atol + rtol * np.abs(features64)
                trunk_rule = "tf32 tolerance"
            judge("output", "trunk", ORACLE, head_input, features64, where=where,
                  allowed=trunk_allowed, rule=trunk_rule,
                  keys=("features", "features/oracle"))  # fmt: skip
        else:
            arrays["features/oracle"] = features64
        oracle_outputs = _oracle_outputs(cfg, built, x_model, keras_mask)
        allowed = oracle_allowances(cfg, head_input, features64, heads, bounds_out)
        for v in cfg.variants:
            expected = {ORACLE: oracle_outputs[v], **outputs}
            judge.pair("output", v, ORACLE, expected, errors, where=where,
                       allowed={v: allowed[v]}, rule=out_rule,
                       keys=(f"outputs/{v}", f"outputs/oracle/{v}"))  # fmt: skip

    power = None
    if cfg.power and errors:
        notes.append(f"--power: not run, {', '.join(errors)} raised instead of an output")
    elif cfg.power:
        power = power_check(cfg, judge, x_model, head_input, features64, heads, outputs,
                            oracle_outputs, bounds_out, where)  # fmt: skip

    if cfg.lengths is not None:
        notes += _mask_notes(cfg, outputs, valid, keras_mask, mask_kept)

    if len(devices) > 1:
        other, other_name = engine.forward(built, x_model, devices[1])
        here = used_device
        other_input = engine.head_input(built, x_model, devices[1], dynamic=dynamic)
        arrays[f"features@{other_name}"] = other_input
        # Each device's head bound (TF32's u = 2^-11 where TF32 is on, flushing where probed)
        # from the head input it read, plus the trunk's difference carried through the exact
        # head: the rule of core.cross, as across backends.
        head_arrays = {f"weights/{v}/{n}": w for v, (k, b) in heads.items()
                       for n, w in (("kernel", k), ("bias", b))}  # fmt: skip
        sides = [
            cross.Side({"features": h, **head_arrays}, _device_environment(engine, name))
            for h, name in ((other_input, other_name), (head_input, here))
        ]
        if any(side.precision(cfg.dtype) == "tf32" for side in sides):
            notes.append(
                "TF32 is on: float32 matmuls on the GPU round their inputs to a 10-bit "
                "mantissa, so the cross-device bounds use its unit roundoff 2^-11 there "
                "(docs/backends.md); --tf32 off compares float32 with float32"
            )
        for v, t in zip(cfg.variants, other, strict=True):
            if v in outputs:  # (a head that raised on the dynamic path has no output here)
                limit = cross.output_allowance(
                    sides[0], sides[1], v, dtype=cfg.dtype, activation=cfg.activation
                )
                judge("cross-device", f"{v}@{other_name}", f"{v}@{here}", np.asarray(t),
                      outputs[v], where=where, allowed=limit,
                      rule=cross.output_rule(cfg.head_input_size, sides[0], sides[1], cfg.dtype),
                      keys=(f"outputs/{v}@{other_name}", f"outputs/{v}"))  # fmt: skip

    if cfg.grad:
        notes += _gradient_checks(
            cfg, engine, devices[0], built, x_model, valid, keras_mask, judge, arrays,
            head_input, heads,
        )  # fmt: skip

    if cfg.train_steps:
        run = engine.train(cfg, built, x_model, valid, devices[0])
        for v, out in run.outputs.items():
            arrays[f"trained/outputs/{v}"] = out
            for quantity, value in run.weights[v].items():
                arrays[f"trained/{v}/{quantity}"] = value
        if run.targets is not None:
            arrays["trained/targets"] = run.targets
        for name, steps in run.gradients.items():
            arrays[f"trained/gradients/{name}"] = steps
        _save_weights(built, cfg, arrays)
        # Each variant's allowance against the exact trajectory: the reference's, for both
        # (the same model, optimizer and steps); a pair is allowed the sum.
        tol = default_tolerances(cfg.dtype)
        side = cross.training_allowances(
            arrays, reference, optimizer=cfg.optimizer, learning_rate=cfg.learning_rate,
            dtype=judge.precision, atol=tol[0], rtol=tol[1], ftz=judge.ftz,
        )  # fmt: skip
        for v in cfg.variants[1:]:
            for quantity, value in run.weights[v].items():
                limit = side.get(f"trained/{reference}/{quantity}")
                judge(
                    "trained-weights",
                    v,
                    reference,
                    value,
                    run.weights[reference][quantity],
                    quantity=quantity,
                    allowed=None if limit is None else 2.0 * limit,
                    rule="training",
                    keys=(f"trained/{v}/{quantity}", f"trained/{reference}/{quantity}"),
                )
            limit = side.get(f"trained/outputs/{reference}")
            judge(
                "trained-output",
                v,
                reference,
                run.outputs[v],
                run.outputs[reference],
                where=where,
                allowed=None if limit is None else 2.0 * limit,
                rule="training",
                keys=(f"trained/outputs/{v}", f"trained/outputs/{reference}"),
            )
        training = run.to_dict()

    if cfg.weights == "independent":
        notes.append(
            "--weights independent: each head has its own initialisation, so only "
            "constant initializers can agree"
        )
    if cfg.rnn == "none":
        notes.append("--rnn none: the heads read the input directly; --hidden is not used")
    _save_weights(built, cfg, arrays)

    env = engine.environment(used_device)
    env["deterministic"] = cfg.deterministic
    return CompareRun(
        config=cfg.to_dict(),
        environment=env,
        layers=[row.to_dict() for row in built.rows],
        total_params=built.total_params,
        comparisons=judge.comparisons,
        notes=notes,
        training=training,
        power=power,
        arrays=arrays,
    )


def _device_environment(engine: Engine, device: str) -> dict[str, Any]:
    """What the bounds need to know of a device: its name, TF32, flush-to-zero."""
    tf32 = engine.tf32_setting() if "GPU" in device.upper() else None
    return {"device": device, "tf32": tf32, "flush_to_zero": engine.flush_to_zero(device)}


def _save_weights(built: BuiltModel, cfg: CompareConfig, arrays: dict[str, np.ndarray]) -> None:
    """The model's (initial) weights under ``weights/...`` (``--save-arrays``, training)."""
    trunk = built.trunk_weights()
    if trunk is not None:
        for key, value in zip(TRUNK_WEIGHTS, trunk, strict=True):
            arrays[f"weights/rnn/{key}"] = value
    for v in cfg.variants:
        kernel, bias = built.head_weights(v)
        arrays[f"weights/{v}/kernel"] = kernel
        arrays[f"weights/{v}/bias"] = bias


def _bound_precision(engine: Engine, dtype: str, device: str) -> str:
    """``"tf32"`` when float32 runs on a GPU with TensorFloat-32 enabled, else ``dtype``."""
    if dtype != "float32" or "GPU" not in str(device).upper():
        return dtype
    return "tf32" if engine.tf32_setting() else dtype


def output_bounds(
    cfg: CompareConfig,
    head_input: np.ndarray,
    heads: dict[str, tuple[np.ndarray, np.ndarray]],
    precision: str | None = None,
    ftz: bool = False,
) -> dict[str, np.ndarray]:
    """Per variant: the allowed difference of its output from the exact head on ``head_input``.

    The variant's own rounding in the compute dtype plus the float64 reference's own rounding.
    A pair of variants read the same ``head_input`` tensor, so the trunk's error is common and
    cancels: the pair is allowed the sum of the two heads' bounds.
    """
    cache: dict[bytes, np.ndarray] = {}
    result = {}
    for v, (kernel, bias) in heads.items():
        key = kernel.tobytes() + bias.tobytes()
        if key not in cache:
            cache[key] = bounds.head_output_bound(
                head_input, kernel, bias, cfg.activation, precision or cfg.dtype, ftz=ftz
            ) + bounds.head_output_bound(head_input, kernel, bias, cfg.activation, "float64")
        result[v] = cache[key]
    return result


def oracle_allowances(
    cfg: CompareConfig,
    head_input: np.ndarray,
    features64: np.ndarray,
    heads: dict[str, tuple[np.ndarray, np.ndarray]],
    bounds_out: dict[str, np.ndarray],
    activation: str | None = None,
) -> dict[str, np.ndarray]:
    """Per variant: allowed difference from the float64 oracle of the whole model.

    The head's bound (:func:`output_bounds`) plus the trunk's error carried through this head,
    measured exactly: ``|head64(h) - head64(h64)|`` for the trunk output ``h`` the head read
    and the oracle's ``h64``, plus twice the float64 rounding of those two evaluations. The
    trunk's error itself is judged by the ``trunk vs oracle`` comparison.
    """
    result = {}
    for v, (kernel, bias) in heads.items():
        act = activation or cfg.activation
        carried = np.abs(
            bounds.head_output_reference(head_input, kernel, bias, act)
            - bounds.head_output_reference(features64, kernel, bias, act)
        )
        own64 = bounds.head_output_bound(features64, kernel, bias, act, "float64")
        result[v] = bounds_out[v] + carried + 2.0 * own64
    return result


def power_check(
    cfg: CompareConfig,
    judge: _Judge,
    x: np.ndarray,
    head_input: np.ndarray,
    features64: np.ndarray | None,
    heads: dict[str, tuple[np.ndarray, np.ndarray]],
    outputs: dict[str, np.ndarray],
    oracle_outputs: dict[str, np.ndarray] | None,
    bounds_out: dict[str, np.ndarray],
    where: Any,
) -> dict[str, Any]:
    """``--power``: would this configuration, input and rule have caught known faults?

    Each fault of :func:`tdcheck.core.faults.faults` goes into a copy of the second variant's
    head (the first when there is one), evaluated exactly and rounded once to the compute
    dtype, and is judged as that head would be: against the reference variant's actual output
    (the pair rule) and against the oracle. The user's model is never touched.
    """
    target = cfg.variants[1] if len(cfg.variants) > 1 else cfg.variants[0]
    reference = cfg.variants[0]
    kernel, bias = heads[target]
    h = np.asarray(head_input, np.float64)
    rule = bounds.output_rule(cfg.head_input_size, judge.precision)

    def judged(k: np.ndarray, b: np.ndarray, act: str) -> tuple[bool, str, float]:
        y = faults.round_to(bounds.head_output_reference(h, k, b, act), cfg.dtype)
        own = bounds.head_output_bound(
            h, k, b, act, judge.precision, ftz=judge.ftz
        ) + bounds.head_output_bound(h, k, b, act, "float64")
        found: list[tuple[str, float]] = []
        if target != reference:
            if judge.exact:  # bitwise: against the healthy head evaluated the same way
                expected = faults.round_to(
                    bounds.head_output_reference(h, kernel, bias, cfg.activation), cfg.dtype
                )
            else:
                expected = outputs[reference]
            s = judge.measure(target, reference, y, expected, where, own + bounds_out[reference],
                              rule)  # fmt: skip
            if not s.passed:
                found.append((f"{target} vs {reference}", s.margin or 0.0))
        if oracle_outputs is not None and features64 is not None:
            allowed = oracle_allowances(cfg, h, features64, {target: (k, b)}, {target: own}, act)
            s = judge.measure(target, ORACLE, y, oracle_outputs[target], where, allowed[target],
                              rule)  # fmt: skip
            if not s.passed:
                found.append((f"{target} vs {ORACLE}", s.margin or 0.0))
        margin = max((m for _, m in found), default=0.0)
        return bool(found), ", ".join(name for name, _ in found), margin

    rows: list[dict[str, Any]] = []
    missed_rounding: list[str] = []
    missed: list[str] = []
    for fault in faults.faults(kernel, bias, cfg.activation, cfg.dtype):
        detected, by, margin = judged(fault.kernel, fault.bias, fault.activation)
        rows.append({
            "fault": fault.name, "detected": detected, "by": by or None,
            "margin": margin if detected else None, "note": fault.note or None,
            "rounding_level": fault.rounding_level,
        })  # fmt: skip
        if not detected:
            (missed_rounding if fault.rounding_level else missed).append(fault.name)
    smallest = None
    for power in range(0, 31):
        k = 2.0**power
        if judged(faults.scaled_kernel(kernel, k, cfg.dtype), bias, cfg.activation)[0]:
            smallest = k
            break
    blind = None
    if missed:
        why, options = faults.blind_reasons(kernel, bias, x, missed)
        blind = f"blind to {', '.join(missed)}: {why}"
        blind += f"; sensitive with {' '.join(options)}" if options else ""
    below = None
    if missed_rounding:
        below = (
            f"not seen: {', '.join(missed_rounding)}: within the rounding a correct "
            "implementation may add (the bound); --exact sees such changes between "
            "bitwise-identical variants"
        )
    return {"head": target, "reference": reference, "faults": rows,
            "smallest_scaling_detected": smallest, "blind": blind,
            "below_rounding": below}  # fmt: skip


def head_gradient_bounds(
    cfg: CompareConfig,
    head_input: np.ndarray,
    r: np.ndarray,
    heads: dict[str, tuple[np.ndarray, np.ndarray]],
    precision: str | None = None,
    ftz: bool = False,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Per variant: exact float64 head weight gradients and their allowed differences.

    Both from the head's actual input and the cotangent ``R``; the allowance is the variant's
    rounding in the compute dtype plus the float64 recomputation's own.
    """
    refs, allowed = {}, {}
    for v, (kernel, bias) in heads.items():
        act = cfg.activation
        refs[v] = bounds.head_gradient_reference(head_input, r, kernel, bias, act)
        low = bounds.head_gradient_bound(
            head_input, r, kernel, bias, act, precision or cfg.dtype, ftz=ftz
        )
        high = bounds.head_gradient_bound(head_input, r, kernel, bias, act, "float64")
        allowed[v] = {q: low[q] + high[q] for q in low}
    return refs, allowed


def _oracle_outputs(
    cfg: CompareConfig, built: BuiltModel, x: np.ndarray, mask: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The float64 oracle for each variant's own head weights (computed once when shared)."""
    trunk = built.trunk_weights()
    return _per_head_weights(
        built, lambda k, b: oracle.forward(x, cfg.rnn, trunk, k, b, cfg.activation, mask=mask)
    )


def _per_head_weights(built: BuiltModel, compute: Callable[[Any, Any], T]) -> dict[str, T]:
    """``compute(kernel, bias)`` for every head, once per distinct weights (shared: once)."""
    cache: dict[bytes, T] = {}
    result = {}
    for variant in built.heads:
        kernel, bias = built.canonical_head_weights(variant)
        key = kernel.tobytes() + bias.tobytes()
        if key not in cache:
            cache[key] = compute(kernel, bias)
        result[variant] = cache[key]
    return result


def _mask_notes(
    cfg: CompareConfig,
    outputs: dict[str, np.ndarray],
    valid: np.ndarray,
    keras_mask: np.ndarray | None,
    mask_kept: dict[str, bool],
) -> list[str]:
    """Say what happens at the padded positions, with numbers."""
    padded = ~valid
    n_padded = int(padded.sum())
    notes = [
        f"--lengths: output comparisons cover the {int(valid.sum())} valid timesteps; "
        f"{n_padded} padded timestep(s) are zeros behind a Masking layer"
    ]
    if n_padded:
        trunk = "the trunk repeats its last valid output" if cfg.rnn != "none" else "the input is 0"
        reference = cfg.variants[0]
        parts = []
        for v in cfg.variants[1:]:
            if v not in outputs or reference not in outputs:
                continue
            s = compare_arrays(outputs[v], outputs[reference], atol=0, rtol=0,
                               where=padded[..., None])  # fmt: skip
            same = "bitwise equal" if s.bitwise_equal else f"max abs diff {s.max_abs_diff:.3g}"
            parts.append(f"{v} vs {reference}: {same}")
        notes.append(
            f"at padded timesteps {trunk}, so every head repeats a value computed from it"
            + (f" ({'; '.join(parts)})" if parts else "")
        )
    dropped = [v for v, kept in mask_kept.items() if not kept]
    if dropped:
        notes.append(
            f"{', '.join(dropped)} {'drops' if len(dropped) == 1 else 'drop'} the mask: "
            "no mask reaches later layers (Keras: the layer does not support masking)"
        )
    if keras_mask is not None and bool(np.any(valid & ~keras_mask)):
        n = int(np.sum(valid & ~keras_mask))
        notes.append(f"{n} valid timestep(s) are all zeros, so Masking masks them too")
    return notes


def _gradient_checks(
    cfg: CompareConfig,
    engine: Engine,
    device: str,
    built: BuiltModel,
    x: np.ndarray,
    valid: np.ndarray,
    keras_mask: np.ndarray | None,
    judge: _Judge,
    arrays: dict[str, np.ndarray],
    head_input: np.ndarray,
    heads: dict[str, tuple[np.ndarray, np.ndarray]],
) -> list[str]:
    """Gradient comparisons: each variant against the reference and the oracle.

    The head's weight gradients are sums over batch x seq positions: they are judged with
    :func:`head_gradient_bounds` (pairs: the sum of both heads' bounds) and, with the oracle,
    against their exact float64 value recomputed from the head's input and ``R``.
    """
    r = gradients.cotangent((*x.shape[:2], cfg.units), cfg.seed, valid)
    arrays["gradients/R"] = r
    grads = engine.gradients(built, x, r, device)
    reference = cfg.variants[0]
    refs, allowed = head_gradient_bounds(cfg, head_input, r, heads, judge.precision, judge.ftz)
    rule = bounds.gradient_rule(int(np.prod(head_input.shape[:-1])), judge.precision)
    positions = int(np.prod(head_input.shape[:-1]))

    def scaled(expected: np.ndarray, n: int) -> np.ndarray:
        return bounds.scaled_allowance(expected, n, judge.precision, judge.atol, judge.rtol)

    for v in cfg.variants[1:]:
        for quantity, value in grads[v].items():
            bound = allowed[v].get(quantity)
            if bound is not None:
                bound, rule_q = bound + allowed[reference][quantity], rule
            else:  # through the trunk: no derived bound, the scaled rule
                bound, rule_q = scaled(grads[reference][quantity], positions), "scaled"
            judge(
                "gradient",
                v,
                reference,
                value,
                grads[reference][quantity],
                quantity=quantity,
                allowed=bound,
                rule=rule_q,
                keys=(f"gradients/{v}/{quantity}", f"gradients/{reference}/{quantity}"),
            )
    for v in cfg.variants:
        for quantity, value in grads[v].items():
            arrays[f"gradients/{v}/{quantity}"] = value
    notes = [f"--grad: loss {gradients.LOSS}"]
    if not cfg.oracle:
        return notes
    for v in cfg.variants:
        for quantity in ("head.kernel", "head.bias"):
            judge(
                "gradient",
                v,
                ORACLE,
                grads[v][quantity],
                refs[v][quantity],
                quantity=quantity,
                allowed=allowed[v][quantity],
                rule=rule,
                keys=(f"gradients/{v}/{quantity}", f"gradients/oracle/{v}/{quantity}"),
            )
    if x.size > gradients.MAX_FD_ELEMENTS:
        notes.append(
            f"--grad: no oracle input gradient: {x.size} input elements is over the "
            f"finite-difference limit of {gradients.MAX_FD_ELEMENTS}"
        )
        return notes
    trunk = built.trunk_weights()
    expected = _per_head_weights(
        built,
        lambda k, b: gradients.oracle_input_gradient(
            x, r, rnn=cfg.rnn, trunk_weights=trunk, kernel=k, bias=b,
            activation=cfg.activation, mask=keras_mask,
        ),
    )  # fmt: skip
    for v in cfg.variants:
        fd = expected[v]
        assert fd is not None  # (None only over MAX_FD_ELEMENTS, excluded above)
        judge("gradient", v, ORACLE, grads[v]["input"], fd, quantity="input",
              allowed=scaled(fd, positions), rule="scaled",
              keys=(f"gradients/{v}/input", f"gradients/oracle/{v}/input"))  # fmt: skip
    if cfg.activation in ("relu", "elu", "selu"):
        notes.append(
            f"--grad: the oracle's finite differences are not derivatives at the kink of "
            f"{cfg.activation}; a rare mismatch there is the oracle's"
        )
    return notes
