"""Building the Keras model: ``Input -> trunk -> one head per variant``.

All heads read the same trunk output, exactly as in the seed experiment. With
``weights='shared'`` the first variant is initialised and its kernel and bias
are copied into every other head (reshaped where a layer stores them in another
shape); with ``'independent'`` each head keeps its own initialisation.

Example (needs TensorFlow)::

    tf, keras = load_tensorflow()
    built = build_model(CompareConfig().validated().resolve_sizes(None), keras)
    built.model.count_params()   # 224
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.config import CompareConfig, InitializerSpec
from tdcheck.core.variants import HeadSpec, layer_name
from tdcheck.engines.variant_layers import VARIANTS

_TRUNK_CLASSES = {"lstm": "LSTM", "gru": "GRU", "simple-rnn": "SimpleRNN"}
#: The trunk's weights in the order Keras holds them (``trunk.get_weights()``).
TRUNK_WEIGHTS = ("kernel", "recurrent_kernel", "bias")


@dataclass
class LayerRow:
    """One row of the layers table, like ``model.summary()``."""

    name: str
    type: str
    output_shape: tuple[int | None, ...]
    params: int
    connected_to: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "connected_to": self.connected_to,
        }


@dataclass
class BuiltModel:
    """The model and handles on its parts."""

    model: Any
    trunk: Any | None
    heads: dict[str, Any]
    rows: list[LayerRow] = field(default_factory=list)
    #: ``Input -> (Masking) -> trunk``: what every head reads; None when that is the input.
    features_model: Any | None = None

    def __call__(self, x: Any, training: bool = False) -> list[Any]:
        """The heads' outputs, always as a list (Keras returns a bare tensor for one head)."""
        out = self.model(x, training=training)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    @property
    def total_params(self) -> int:
        return int(self.model.count_params())

    def head_weights(self, variant: str) -> tuple[np.ndarray, np.ndarray]:
        """``(kernel, bias)`` of a head as the layer stores them."""
        kernel, bias = self.heads[variant].get_weights()
        return kernel, bias

    def canonical_head_weights(self, variant: str) -> tuple[np.ndarray, np.ndarray]:
        """``(kernel (d, units), bias (units,))`` of a head."""
        kernel, bias = self.head_weights(variant)
        units = bias.shape[-1]
        return kernel.reshape(-1, units), bias

    def head_input(self, x: Any) -> np.ndarray:
        """The tensor every head reads (the trunk's output, masked input, or the input)."""
        if self.features_model is None:
            return np.asarray(x)
        return np.asarray(self.features_model(x, training=False))

    def trunk_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(kernel, recurrent_kernel, bias)`` of the trunk, or None without one."""
        if self.trunk is None:
            return None
        kernel, recurrent, bias = self.trunk.get_weights()
        return kernel, recurrent, bias


def make_initializer(keras: Any, spec: InitializerSpec, seed: int | None) -> Any:
    """A Keras initializer from a parsed spec, seeded when it is random."""
    cls = getattr(keras.initializers, "".join(p.title() for p in spec.name.split("_")))
    kwargs: dict[str, Any] = {}
    if spec.name == "constant":
        kwargs["value"] = spec.value
    elif spec.name == "random_uniform" and spec.value is not None:
        kwargs.update(minval=-spec.value, maxval=spec.value)
    elif spec.value is not None:
        kwargs["stddev"] = spec.value
    if spec.name not in ("constant", "zeros", "ones"):
        kwargs["seed"] = seed
    return cls(**kwargs)


def build_model(
    cfg: CompareConfig, keras: Any, variants: tuple[str, ...] | None = None
) -> BuiltModel:
    """Build the functional model for a validated, size-resolved config.

    ``variants`` overrides ``cfg.variants`` (training builds one model per variant).
    With ``cfg.lengths`` a ``Masking(mask_value=0.0)`` layer follows the input, so the
    trunk and the heads see the mask of the zero-padded timesteps.
    """
    assert cfg.features is not None
    variants = variants or cfg.variants
    keras.utils.set_random_seed(cfg.seed)
    policy = cfg.dtype  # every --dtype value is a Keras dtype policy name
    inputs = keras.Input((None, cfg.features), name="input", dtype=_input_dtype(cfg.dtype))
    connected = {"input": "-"}
    features, feeder = inputs, "input"
    if cfg.lengths is not None:
        masking = keras.layers.Masking(mask_value=0.0, name="masking", dtype=policy)
        features, feeder = masking(features), _connect(connected, masking, feeder)
    trunk = None
    if cfg.rnn != "none":
        cls = getattr(keras.layers, _TRUNK_CLASSES[cfg.rnn])
        # Keras's default trunk distributions (glorot-uniform kernel, orthogonal recurrent
        # kernel), drawn by NumPy from --seed: the same seed gives the same weights in every
        # dtype, on every device and TensorFlow version; bfloat16 works although TensorFlow
        # has no bfloat16 QR; and no random or QR kernel is started for it.
        kernel, recurrent = trunk_initial_weights(cfg)
        trunk = cls(
            cfg.hidden,
            return_sequences=True,
            name=cfg.rnn.replace("-", "_"),
            dtype=policy,
            kernel_initializer=_from_array(keras, kernel),
            recurrent_initializer=_from_array(keras, recurrent),
        )
        features, feeder = trunk(features), _connect(connected, trunk, feeder)

    heads: dict[str, Any] = {}
    outputs = []
    for index, variant in enumerate(variants):
        # Independent heads get distinct seeds, so random initializers really differ.
        seed = cfg.seed + 1 + (index if cfg.weights == "independent" else 0)
        spec = HeadSpec(
            units=cfg.units,
            activation=cfg.activation,
            kernel_initializer=make_initializer(keras, cfg.kernel_initializer, seed),
            bias_initializer=make_initializer(keras, cfg.bias_initializer_spec, seed + 7919),
            name=layer_name(variant),
            dtype=policy,
        )
        layer = VARIANTS[variant].build(spec)
        with warnings.catch_warnings():
            # Conv1D and EinsumDense warn that they drop the mask; the report says so.
            warnings.simplefilter("ignore")
            outputs.append(layer(features))
        _connect(connected, layer, feeder)
        heads[variant] = layer
    model = keras.Model(inputs, outputs, name="tdcheck")

    features_model = None if features is inputs else keras.Model(inputs, features)
    built = BuiltModel(model=model, trunk=trunk, heads=heads, features_model=features_model)
    if cfg.weights == "shared":
        sync_head_weights(built, variants[0])
    built.rows = _layer_rows(model, connected)
    return built


def _connect(connected: dict[str, str], layer: Any, feeder: str) -> str:
    connected[layer.name] = feeder
    return str(layer.name)


def sync_head_weights(built: BuiltModel, source: str) -> None:
    """Copy the source head's kernel and bias into every other head, reshaped."""
    kernel, bias = built.canonical_head_weights(source)
    for variant, layer in built.heads.items():
        if variant == source:
            continue
        target = layer.get_weights()
        layer.set_weights([kernel.reshape(target[0].shape), bias.reshape(target[1].shape)])


def trunk_initial_weights(cfg: CompareConfig) -> tuple[np.ndarray, np.ndarray]:
    """The trunk's kernel (glorot uniform) and recurrent kernel (orthogonal), in float32.

    The same distributions as Keras's defaults for LSTM, GRU and SimpleRNN, from a NumPy
    generator seeded with ``cfg.seed``.
    """
    assert cfg.features is not None
    gates = {"lstm": 4, "gru": 3, "simple-rnn": 1}[cfg.rnn]
    rng = np.random.default_rng([cfg.seed, 0x74726E6B])
    fan_in, fan_out = cfg.features, gates * cfg.hidden
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    kernel = rng.uniform(-limit, limit, (fan_in, fan_out))
    # Orthogonal (hidden, gates*hidden): QR of a normal matrix, signs fixed by diag(R).
    rows, cols = cfg.hidden, gates * cfg.hidden
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    recurrent = q.T if rows < cols else q
    return kernel.astype(np.float32), recurrent.reshape(rows, cols).astype(np.float32)


def _from_array(keras: Any, array: np.ndarray) -> Any:
    """An initializer that returns ``array`` cast to the variable's dtype."""

    class FromArray(keras.initializers.Initializer):
        def __call__(self, shape: Any, dtype: Any = None) -> Any:
            assert tuple(shape) == array.shape, (shape, array.shape)
            return keras.ops.convert_to_tensor(array, dtype=dtype or "float32")

    return FromArray()


def _input_dtype(dtype: str) -> str:
    return "float32" if dtype == "mixed_float16" else dtype


def _layer_rows(model: Any, connected: dict[str, str]) -> list[LayerRow]:
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "TimeDistributed":
            kind = f"TimeDistributed({type(layer.layer).__name__})"
        rows.append(
            LayerRow(
                name=layer.name,
                type=kind,
                output_shape=tuple(layer.output.shape),
                params=int(layer.count_params()),
                connected_to=connected.get(layer.name, "?"),
            )
        )
    return rows
