"""The Python API behind ``tdcheck compare``.

>>> import tdcheck                                     # doctest: +SKIP
>>> result = tdcheck.compare(hidden=5, seq=3)          # doctest: +SKIP
>>> bool(result), result.total_params                  # doctest: +SKIP
(True, 224)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tdcheck.core import oracle
from tdcheck.core.config import CompareConfig
from tdcheck.core.inputs import load_npy, make_input
from tdcheck.core.stats import ArrayStats, compare_arrays
from tdcheck.engines import gradients
from tdcheck.engines.keras_model import TRUNK_WEIGHTS, BuiltModel, build_model
from tdcheck.engines.tensorflow import (
    environment,
    error_text,
    load_tensorflow,
    quiet,
    select_devices,
    short_device,
)
from tdcheck.reports.result import ORACLE, CompareResult, Comparison

T = TypeVar("T")


@dataclasses.dataclass
class CompareRun(CompareResult):
    """A :class:`CompareResult` that also holds the arrays (for ``--save-arrays``)."""

    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)


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
    return cfg, x * valid_positions(cfg)[..., None]


def valid_positions(cfg: CompareConfig) -> np.ndarray:
    """``(batch, seq)`` booleans: True where a timestep is within its row's length."""
    assert cfg.batch and cfg.seq
    if cfg.lengths is None:
        return np.ones((cfg.batch, cfg.seq), bool)
    return np.arange(cfg.seq)[None, :] < np.asarray(cfg.lengths)[:, None]


class _Judge:
    """Builds :class:`Comparison` objects with one tolerance setting."""

    def __init__(self, cfg: CompareConfig, valid: np.ndarray) -> None:
        self.atol, self.rtol = cfg.tolerances()
        self.exact = cfg.exact
        self.valid = valid
        self.comparisons: list[Comparison] = []

    def __call__(
        self, kind: str, a: str, b: str, actual: Any, expected: Any, quantity: str = "output",
        where: Any = None,
    ) -> Comparison:  # fmt: skip
        # --exact is for pairs of variants: a float32 output is never bitwise equal to the
        # float64 oracle, so the oracle stays judged with tolerances.
        exact = self.exact and ORACLE not in (a, b)
        stats = compare_arrays(
            actual, expected, atol=self.atol, rtol=self.rtol, exact=exact, where=where
        )
        comparison = Comparison(kind, a, b, stats, quantity)
        self.comparisons.append(comparison)
        return comparison

    def pair(
        self, kind: str, a: str, b: str, arrays: dict[str, np.ndarray], errors: dict[str, str],
        where: Any = None,
    ) -> Comparison:  # fmt: skip
        """Judge ``arrays[a]`` against ``arrays[b]``, or record that one of them raised."""
        failed = [name for name in (a, b) if name in errors]
        if not failed:
            return self(kind, a, b, arrays[a], arrays[b], where=where)
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
    return Session().run(cfg, x)


#: Config fields that change the model itself; batch, seq and the input do not.
_MODEL_FIELDS = (
    "features", "hidden", "units", "rnn", "initializer", "bias_initializer", "activation",
    "variants", "weights", "seed", "dtype",
)  # fmt: skip


class Session:
    """TensorFlow loaded once, and models reused across configurations.

    A model's input is ``(None, features)``, so configurations that differ only in batch
    size, sequence length or input values run on the same built model (same seed, same
    weights) instead of building it again; ``tdcheck sweep`` relies on this.
    """

    def __init__(self, max_models: int = 16) -> None:
        self.tf, self.keras = load_tensorflow()
        self.max_models = max_models
        self._models: dict[tuple[Any, ...], BuiltModel] = {}

    def model(self, cfg: CompareConfig, device: str) -> BuiltModel:
        """The built model for ``cfg`` on ``device``, from the cache when possible."""
        key = (*(getattr(cfg, f) for f in _MODEL_FIELDS), cfg.lengths is not None, device)
        built = self._models.pop(key, None)
        if built is None:
            with quiet(), self.tf.device(device):
                built = build_model(cfg, self.keras)
            if len(self._models) >= self.max_models:
                self._models.pop(next(iter(self._models)))  # least recently used
        self._models[key] = built
        return built

    def run(self, cfg: CompareConfig, x: np.ndarray) -> CompareRun:
        """Compare for a validated, resolved ``cfg`` and its input (see :func:`prepare`)."""
        return _run(self, cfg, x)


def _run(session: Session, cfg: CompareConfig, x: np.ndarray) -> CompareRun:
    tf, keras = session.tf, session.keras
    devices = select_devices(tf, cfg.device)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    valid = valid_positions(cfg)
    where = valid[..., None] if cfg.lengths is not None else None
    judge = _Judge(cfg, valid)
    reference = cfg.variants[0]
    notes: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    training: dict[str, Any] | None = None

    built = session.model(cfg, devices[0])
    x_model = x.astype(built.model.inputs[0].dtype)
    mask_kept = {
        v: getattr(t, "_keras_mask", None) is not None
        for v, t in zip(cfg.variants, built.model.outputs, strict=True)
    }
    errors: dict[str, str] = {}
    with quiet(), tf.device(devices[0]):
        if cfg.time_dim == "dynamic":
            outputs, errors, used_device = _dynamic_outputs(tf, keras, built, x_model)
            notes.append(
                "--time-dim dynamic: each head ran in tf.function traced with an unknown "
                "sequence length, so TimeDistributed takes its vectorized_map path "
                "(gradients and training still run eagerly)"
            )
        else:
            tensors = built(x_model)
            used_device = tensors[0].device
            outputs = {v: np.asarray(t) for v, t in zip(cfg.variants, tensors, strict=True)}

    arrays["input"] = x_model
    arrays.update({f"outputs/{v}": out for v, out in outputs.items()})
    for v in cfg.variants[1:]:
        judge.pair("output", v, reference, outputs, errors, where=where)

    keras_mask = oracle.keras_mask(x_model) if cfg.lengths is not None else None
    if cfg.oracle:
        oracle_outputs = _oracle_outputs(cfg, built, x_model, keras_mask)
        arrays["outputs/oracle"] = oracle_outputs[reference]
        for v in cfg.variants:
            expected = {ORACLE: oracle_outputs[v], **outputs}
            judge.pair("output", v, ORACLE, expected, errors, where=where)

    if cfg.lengths is not None:
        notes += _mask_notes(cfg, outputs, valid, keras_mask, mask_kept)

    if len(devices) > 1:
        with quiet(), tf.device(devices[1]):
            other = built(x_model)
            other_name = short_device(other[0].device)
        here = short_device(used_device)
        for v, t in zip(cfg.variants, other, strict=True):
            if v in outputs:  # (a head that raised on the dynamic path has no output here)
                judge("cross-device", f"{v}@{other_name}", f"{v}@{here}", np.asarray(t),
                      outputs[v], where=where)  # fmt: skip

    if cfg.grad:
        with quiet(), tf.device(devices[0]):
            notes += _gradient_checks(cfg, tf, built, x_model, valid, keras_mask, judge, arrays)

    if cfg.train_steps:
        from tdcheck.engines.training import train

        with quiet(), tf.device(devices[0]):
            run = train(cfg, tf, keras, built, x_model, valid)
        for v in cfg.variants[1:]:
            for quantity, value in run.weights[v].items():
                judge("trained-weights", v, reference, value, run.weights[reference][quantity],
                      quantity=quantity)  # fmt: skip
            judge("trained-output", v, reference, run.outputs[v], run.outputs[reference],
                  where=where)  # fmt: skip
        for v, out in run.outputs.items():
            arrays[f"trained/outputs/{v}"] = out
        training = run.to_dict()

    if cfg.weights == "independent":
        notes.append(
            "--weights independent: each head has its own initialisation, so only "
            "constant initializers can agree"
        )
    if cfg.rnn == "none":
        notes.append("--rnn none: the heads read the input directly; --hidden is not used")
    trunk = built.trunk_weights()
    if trunk is not None:
        for key, value in zip(TRUNK_WEIGHTS, trunk, strict=True):
            arrays[f"weights/rnn/{key}"] = value
    for v in cfg.variants:
        kernel, bias = built.head_weights(v)
        arrays[f"weights/{v}/kernel"] = kernel
        arrays[f"weights/{v}/bias"] = bias

    env = environment(tf, keras, used_device)
    env["deterministic"] = cfg.deterministic
    return CompareRun(
        config=cfg.to_dict(),
        environment=env,
        layers=[row.to_dict() for row in built.rows],
        total_params=built.total_params,
        comparisons=judge.comparisons,
        notes=notes,
        training=training,
        arrays=arrays,
    )


def _dynamic_outputs(
    tf: Any, keras: Any, built: BuiltModel, x: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """Run each head in ``tf.function`` traced with ``TensorSpec([None, None, features])``.

    A head that raises is reported in the errors, not fatal: the others still run.
    """
    spec = tf.TensorSpec([None, None, x.shape[-1]], built.model.inputs[0].dtype)
    outputs: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    device = ""
    xt = tf.constant(x)
    for index, variant in enumerate(built.heads):
        sub = keras.Model(built.model.inputs, built.model.outputs[index])
        fn = tf.function(lambda t, sub=sub: sub(t, training=False), input_signature=[spec])
        try:
            tensor = fn(xt)
        except Exception as exc:  # e.g. a Keras bug on this path
            errors[variant] = error_text(exc)
            continue
        device = device or tensor.device
        outputs[variant] = np.asarray(tensor)
    return outputs, errors, device


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
    tf: Any,
    built: BuiltModel,
    x: np.ndarray,
    valid: np.ndarray,
    keras_mask: np.ndarray | None,
    judge: _Judge,
    arrays: dict[str, np.ndarray],
) -> list[str]:
    """Gradient comparisons: each variant against the reference and, for the input, the oracle."""
    r = gradients.cotangent((*x.shape[:2], cfg.units), cfg.seed, valid)
    grads = gradients.keras_gradients(tf, built, x, r)
    reference = cfg.variants[0]
    for v in cfg.variants[1:]:
        for quantity, value in grads[v].items():
            judge("gradient", v, reference, value, grads[reference][quantity], quantity=quantity)
    for v in cfg.variants:
        arrays[f"gradients/{v}/input"] = grads[v]["input"]
    notes = [f"--grad: loss {gradients.LOSS}"]
    if not cfg.oracle:
        return notes
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
    arrays["gradients/oracle/input"] = expected[reference]  # type: ignore[assignment]
    for v in cfg.variants:
        judge("gradient", v, ORACLE, grads[v]["input"], expected[v], quantity="input")
    if cfg.activation in ("relu", "elu", "selu"):
        notes.append(
            f"--grad: the oracle's finite differences are not derivatives at the kink of "
            f"{cfg.activation}; a rare mismatch there is the oracle's"
        )
    return notes
