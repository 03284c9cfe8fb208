"""Running one configuration on one engine in this process, and judging what it produced.

:class:`Session` keeps an engine and its built models; :func:`run_session` asks the engine
for named arrays (outputs, head input, gradients, trained weights) and hands every pair to
the judge (:mod:`tdcheck.core.judge`), with the allowances the judge derives from the
reference side. Which precision the bounds assume (TF32 or not) is the engine's answer,
asked here and passed down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tdcheck.core import bounds, oracle
from tdcheck.core.config import CompareConfig
from tdcheck.core.inputs import valid_positions
from tdcheck.core.judge import (
    Judge,
    bound_precision,
    cross,
    exact_arithmetic_checks,
    gradient_pair_allowance,
    head_gradient_bounds,
    oracle_allowances,
    output_bounds,
    power_check,
    scaled_gradient_allowance,
)
from tdcheck.core.result import ORACLE, CompareRun
from tdcheck.core.stats import compare_arrays
from tdcheck.core.tolerances import compute_dtype, default_tolerances
from tdcheck.engines import gradients
from tdcheck.engines.base import Engine, load_engine, load_weights
from tdcheck.engines.keras_model import TRUNK_WEIGHTS, BuiltModel

T = TypeVar("T")


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
    judge = Judge.for_config(cfg, valid, arrays)
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
    judge.precision = bound_precision(cfg.dtype, used_device, engine.tf32_setting)
    judge.ftz = cross.Side({}, {"flush_to_zero": engine.flush_to_zero(used_device)}).ftz(
        judge.precision
    )
    judge.accumulation = _accumulation(engine, cfg, head_input, used_device, notes)
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
        # the allowance of both sides from the reference's weights (what both should hold)
        pair_bounds = {v: bounds_out[reference], reference: bounds_out[reference]}
        judge.pair("output", v, reference, outputs, errors, where=where, allowed=pair_bounds,
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
            # (core.judge.cross.side_tolerances, as across backends and devices).
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
        # head: the rule of core.judge.cross, as across backends.
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
        why = cross.training_undetermined(
            arrays, reference, optimizer=cfg.optimizer, learning_rate=cfg.learning_rate,
            dtype=judge.precision, ftz=judge.ftz,
        )  # fmt: skip
        if why is not None:
            same = all(
                np.array_equal(value, run.weights[reference][q])
                for v in cfg.variants[1:]
                for q, value in run.weights[v].items()
            )
            notes.append(why + ("; the variants' trained weights are bitwise identical here"
                                if same else ""))  # fmt: skip
        for v in cfg.variants[1:] if why is None else ():
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
        training["not_judged"] = why

    notes += exact_arithmetic_checks(cfg, judge, head_input, heads, outputs, errors, where)

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
    env["accumulation"] = judge.accumulation
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


def _accumulation(
    engine: Engine, cfg: CompareConfig, head_input: np.ndarray, device: str, notes: list[str]
) -> str | None:
    """The precision the heads' matrix products add in (the engine's probe at their shape),
    for the statistical rule; a note when it is wider than a 16-bit dtype."""
    if cfg.atol is not None or cfg.exact or head_input.ndim < 2:
        return None
    rows = int(np.prod(head_input.shape[:-1]))
    found = engine.accumulation(cfg.dtype, device, rows, int(head_input.shape[-1]), cfg.units)
    compute = compute_dtype(cfg.dtype)
    if found is not None and found != compute:
        notes.append(
            f"{compute} matrix products accumulate in {found} here (probed at the heads' "
            f"shape): the statistical rule rounds their additions with {found}'s u"
        )
    return found


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
    judge: Judge,
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

    for v in cfg.variants[1:]:
        for quantity, value in grads[v].items():
            # head weights: both heads' bounds; through the trunk: the scaled rule
            bound, rule_q = gradient_pair_allowance(
                allowed, v, reference, quantity, grads[reference][quantity], positions,
                judge.precision, judge.atol, judge.rtol,
            )  # fmt: skip
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
              allowed=scaled_gradient_allowance(fd, positions, judge.precision, judge.atol,
                                                judge.rtol), rule="scaled",
              keys=(f"gradients/{v}/input", f"gradients/oracle/{v}/input"))  # fmt: skip
    if cfg.activation in ("relu", "elu", "selu"):
        notes.append(
            f"--grad: the oracle's finite differences are not derivatives at the kink of "
            f"{cfg.activation}; a rare mismatch there is the oracle's"
        )
    return notes
