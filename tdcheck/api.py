"""The Python API behind ``tdcheck compare``.

>>> import tdcheck                                     # doctest: +SKIP
>>> result = tdcheck.compare(hidden=5, seq=3)          # doctest: +SKIP
>>> bool(result), result.total_params                  # doctest: +SKIP
(True, 224)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tdcheck import oracle
from tdcheck.backend import environment, load_tensorflow, quiet_native_stderr, select_device
from tdcheck.config import CompareConfig
from tdcheck.inputs import load_npy, make_input
from tdcheck.model import BuiltModel, build_model
from tdcheck.report import ORACLE, CompareResult, Comparison
from tdcheck.stats import compare_arrays


@dataclasses.dataclass
class CompareRun(CompareResult):
    """A :class:`CompareResult` that also holds the arrays (for ``--save-arrays``)."""

    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)


def prepare(config: CompareConfig | None = None, **options: Any) -> tuple[CompareConfig, Any]:
    """Validate options, read the input and check memory; no TensorFlow yet.

    Returns the resolved config and the input array (float64).
    """
    cfg = dataclasses.replace(config, **options) if config else CompareConfig(**options)
    cfg = cfg.validated()
    if cfg.input in ("ones", "random"):
        cfg = cfg.resolve_sizes(None)
        assert cfg.batch and cfg.seq and cfg.features
        cfg.check_memory()
        x = make_input(
            cfg.input, batch=cfg.batch, seq=cfg.seq, features=cfg.features, seed=cfg.seed
        )
    else:
        x = load_npy(cfg.input)
        cfg = cfg.resolve_sizes(tuple(x.shape))
        cfg.check_memory()
    return cfg, x


def compare(config: CompareConfig | None = None, **options: Any) -> CompareRun:
    """Build the variants with the same weights, run them, and judge every pair.

    Accepts a :class:`CompareConfig` or its fields as keywords. Raises
    :class:`~tdcheck.errors.ConfigError` (bad input) or
    :class:`~tdcheck.errors.EnvironmentProblem` (e.g. ``device='gpu'`` without one).
    """
    cfg, x = prepare(config, **options)
    tf, keras = load_tensorflow()
    device = select_device(tf, cfg.device)
    with quiet_native_stderr(), tf.device(device):
        built = build_model(cfg, keras)
        x_model = x.astype(built.model.inputs[0].dtype)
        tensors = built.model(x_model, training=False)
        used_device = tensors[0].device
        outputs = {v: np.asarray(t) for v, t in zip(cfg.variants, tensors, strict=True)}

    atol, rtol = cfg.tolerances()
    judge = _judge(atol, rtol, cfg.exact)
    reference = cfg.variants[0]
    comparisons = [
        judge("output", v, reference, outputs[v], outputs[reference]) for v in cfg.variants[1:]
    ]
    arrays: dict[str, np.ndarray] = {"input": x_model}
    arrays.update({f"outputs/{v}": out for v, out in outputs.items()})
    notes = []
    if cfg.oracle:
        oracle_outputs = _oracle_outputs(cfg, built, x_model)
        arrays["outputs/oracle"] = oracle_outputs[reference]
        comparisons += [
            judge("output", v, ORACLE, outputs[v], oracle_outputs[v]) for v in cfg.variants
        ]
    if cfg.weights == "independent":
        notes.append(
            "--weights independent: each head has its own initialisation, so only "
            "constant initializers can agree"
        )
    if cfg.rnn == "none":
        notes.append("--rnn none: the heads read the input directly; --hidden is not used")
    trunk = built.trunk_weights()
    if trunk is not None:
        for key, value in zip(("kernel", "recurrent_kernel", "bias"), trunk, strict=True):
            arrays[f"weights/rnn/{key}"] = value
    for v in cfg.variants:
        kernel, bias = built.head_weights(v)
        arrays[f"weights/{v}/kernel"] = kernel
        arrays[f"weights/{v}/bias"] = bias

    return CompareRun(
        config=cfg.to_dict(),
        environment=environment(tf, keras, used_device),
        layers=[row.to_dict() for row in built.rows],
        total_params=built.total_params,
        comparisons=comparisons,
        notes=notes,
        arrays=arrays,
    )


def _judge(atol: float, rtol: float, exact: bool) -> Any:
    def judge(kind: str, a: str, b: str, actual: np.ndarray, expected: np.ndarray) -> Comparison:
        stats = compare_arrays(actual, expected, atol=atol, rtol=rtol, exact=exact)
        return Comparison(kind, a, b, stats)

    return judge


def _oracle_outputs(cfg: CompareConfig, built: BuiltModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 oracle for each variant's own head weights (computed once when shared)."""
    trunk = built.trunk_weights()
    cache: dict[bytes, np.ndarray] = {}
    result = {}
    for v in cfg.variants:
        kernel, bias = built.canonical_head_weights(v)
        key = kernel.tobytes() + bias.tobytes()
        if key not in cache:
            cache[key] = oracle.forward(x, cfg.rnn, trunk, kernel, bias, cfg.activation)
        result[v] = cache[key]
    return result
