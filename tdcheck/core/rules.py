"""The rule table: which ``TimeDistributed(layer)`` can become ``layer`` itself.

``TimeDistributed(layer)`` applies ``layer`` to each timestep ``x[:, t]`` of a
``(batch, time, ...)`` input. When the wrapped layer acts on the last axis only (or
element-wise), applying it to the whole ``(batch, time, ..., features)`` tensor at once
is the same computation with the same weights, and much faster. That is what
*rewritable* means here. Each entry below says why, and gives the layer's config for use
outside the wrapper (an EinsumDense equation gains the time axis, positive axes shift
by one); ``tests/test_rewrite.py`` checks every entry on a real model.

Verdicts:

- ``rewritable``: the same computation in training and inference;
- ``inference only``: equal in inference, not in training; rewritten only on request
  (``tdcheck rewrite --inference-only``);
- ``not rewritable``: a different computation (or one tdcheck cannot prove equal): left alone.

Pure Python: no Keras needed, so ``tdcheck scan`` uses it on a file's config alone.

>>> judge("Dense", {"name": "d", "units": 3}).verdict
'rewritable'
>>> judge("EinsumDense", {"name": "e", "equation": "ab,bc->ac", "output_shape": 3}).config[
...     "equation"]
'adb,bc->adc'
>>> judge("Conv2D", {"name": "c"}).reason
'convolves the spatial axes after the batch axis: the time axis would become one of them'
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REWRITABLE = "rewritable"
INFERENCE_ONLY = "inference only"
NOT_REWRITABLE = "not rewritable"
VERDICTS = (REWRITABLE, INFERENCE_ONLY, NOT_REWRITABLE)

UNKNOWN_REASON = "unknown layer, left alone"


class Refused(Exception):
    """An adapter's answer that this configuration of the layer cannot be rewritten."""

    def __init__(self, verdict: str, reason: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.config = config  # for an inference-only answer: the config to use on request


Adapter = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    """One entry of the table: a verdict and its reason for some layer classes."""

    classes: tuple[str, ...]
    verdict: str
    reason: str
    adapt: Adapter | None = None  # config inside TimeDistributed -> config outside it
    # Why it cannot replace the wrapper in a model that uses Keras masks (None: it can).
    masked: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The answer for one wrapped layer; ``config`` (the layer's config outside the wrapper)
    is set for rewritable and inference-only layers."""

    verdict: str
    reason: str
    config: dict[str, Any] | None = None

    @property
    def rewritable(self) -> bool:
        return self.verdict == REWRITABLE


def _same(config: dict[str, Any]) -> dict[str, Any]:
    return config


def _shift_axes(key: str) -> Adapter:
    """Positive axes count the batch axis: inside the wrapper axis 1 is the first feature
    axis; outside it, that axis is 2. Negative axes count from the end and stay."""

    def adapt(config: dict[str, Any]) -> dict[str, Any]:
        axis = config.get(key, -1)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if any(not isinstance(a, int) for a in axes):
            raise Refused(NOT_REWRITABLE, f"{key}={axis!r} is not an axis number")
        if 0 in axes:
            raise Refused(NOT_REWRITABLE, f"{key} includes the batch axis 0")
        shifted = [a + 1 if a > 0 else a for a in axes]
        config[key] = shifted if isinstance(axis, (list, tuple)) else shifted[0]
        return config

    return adapt


def _then(first: Adapter, second: Adapter) -> Adapter:
    return lambda config: second(first(config))


def _no_noise_shape(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("noise_shape") is not None:
        raise Refused(
            INFERENCE_ONLY,
            f"noise_shape {config['noise_shape']} is per timestep under TimeDistributed "
            "(dropout is the identity in inference, so equal there only)",
            {**config, "noise_shape": None},
        )
    return config


def _einsum(config: dict[str, Any]) -> dict[str, Any]:
    """``ab,bc->ac`` becomes ``adb,bc->adc``: a new letter for the time axis after the
    batch letter, in the input and the output; ``output_shape`` gains that axis."""
    equation = str(config.get("equation", ""))
    try:
        inputs, output = equation.replace(" ", "").split("->")
        first, kernel = inputs.split(",")
    except ValueError:
        raise Refused(NOT_REWRITABLE, f"cannot read the equation {equation!r}") from None
    if first.startswith("...") and output.startswith("..."):
        return config  # an ellipsis already takes any leading axes
    if not first or not output or first[0] != output[0] or first[0] in kernel or "." in first:
        raise Refused(NOT_REWRITABLE, f"equation {equation!r} does not keep the batch axis first")
    time = next(c for c in string.ascii_letters if c not in equation)
    config["equation"] = f"{first[0]}{time}{first[1:]},{kernel}->{output[0]}{time}{output[1:]}"
    shape = config.get("output_shape")
    shape = [shape] if isinstance(shape, int) else list(shape or [])
    config["output_shape"] = [None, *shape]
    return config


_ELEMENTWISE = "element-wise: every value is computed from itself alone"
_LAST_AXIS = "acts on the last axis only: the same weights at every timestep"
_SPATIAL = "convolves the spatial axes after the batch axis: the time axis would become one of them"
_POOLING = "pools the spatial axes after the batch axis: the time axis would become one of them"
_RECURRENT = "a recurrent layer steps along axis 1, which would become the time axis"
_AXES = "rearranges the axes after the batch axis: the time axis would be one of them"

RULES_LIST: tuple[Rule, ...] = (
    Rule(("Dense",), REWRITABLE, _LAST_AXIS, _same),
    Rule(("EinsumDense",), REWRITABLE,
         "an einsum over the feature axes: the equation gains the time axis", _einsum,
         masked="EinsumDense drops the Keras mask that TimeDistributed passes on"),
    Rule(("Activation", "ReLU", "LeakyReLU", "ELU", "Identity", "Rescaling"), REWRITABLE,
         _ELEMENTWISE, _same),
    Rule(("Softmax",), REWRITABLE, "normalises over feature axes (positive axes shift by one)",
         _shift_axes("axis"),
         masked="Softmax applies a Keras mask itself, and TimeDistributed hands it one "
                "timestep's mask at a time"),
    Rule(("LayerNormalization", "UnitNormalization"), REWRITABLE,
         "normalises each position over its feature axes (positive axes shift by one)",
         _shift_axes("axis")),
    Rule(("Dropout", "AlphaDropout"), REWRITABLE,
         "element-wise noise in training, the identity in inference", _no_noise_shape),
    Rule(("GaussianNoise", "GaussianDropout"), REWRITABLE,
         "element-wise noise in training, the identity in inference", _same),
    Rule(("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"), NOT_REWRITABLE,
         "drops whole channels per timestep and accepts only its own input rank: the "
         "time axis cannot be added"),
    Rule(("BatchNormalization",), INFERENCE_ONLY,
         "uses its moving statistics per feature in inference (equal); in training "
         "TimeDistributed normalises each timestep over the batch, the layer alone over "
         "batch and time", _shift_axes("axis")),
    Rule(("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
          "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
          "SeparableConv2D"), NOT_REWRITABLE, _SPATIAL),
    Rule(("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
          "AveragePooling2D", "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
          "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
          "GlobalAveragePooling3D"), NOT_REWRITABLE, _POOLING),
    Rule(("Flatten",), NOT_REWRITABLE,
         "flattens every axis after the batch axis: the time axis would be folded in"),
    Rule(("Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D",
          "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D",
          "UpSampling3D"), NOT_REWRITABLE, _AXES),
    Rule(("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
          "ConvLSTM3D"), NOT_REWRITABLE, _RECURRENT),
    Rule(("TimeDistributed",), NOT_REWRITABLE,
         "a TimeDistributed inside TimeDistributed: left alone"),
    Rule(("Functional", "Sequential", "Model"), NOT_REWRITABLE,
         "wraps a whole model: the wrapper stays (it runs the model on each timestep); "
         "the model's own TimeDistributed layers are listed under it"),
    Rule(("Lambda",), NOT_REWRITABLE, "Python code: unknown, left alone"),
)  # fmt: skip

RULES: dict[str, Rule] = {name: rule for rule in RULES_LIST for name in rule.classes}


#: Said after every inference-only reason: how to get the rewrite, and what it costs.
INFERENCE_ONLY_HINT = (
    "rewritten only with tdcheck rewrite --inference-only (OUT then trains differently)"
)


def judge(class_name: str, config: dict[str, Any], *, masked: bool = False) -> Verdict:
    """The verdict for ``TimeDistributed(class_name(**config))``.

    ``masked``: the model carries Keras masks (a Masking layer, an Embedding with
    ``mask_zero``), so a layer that treats masks differently alone cannot replace the wrapper.
    An inference-only verdict's reason ends with :data:`INFERENCE_ONLY_HINT`.
    """
    verdict = _judge(class_name, config, masked=masked)
    if verdict.verdict == INFERENCE_ONLY:
        return Verdict(verdict.verdict, f"{verdict.reason}; {INFERENCE_ONLY_HINT}", verdict.config)
    return verdict


def _judge(class_name: str, config: dict[str, Any], *, masked: bool) -> Verdict:
    rule = RULES.get(class_name)
    if rule is None:
        return Verdict(NOT_REWRITABLE, UNKNOWN_REASON)
    if rule.adapt is None:
        return Verdict(rule.verdict, rule.reason)
    if masked and rule.masked:
        return Verdict(NOT_REWRITABLE, f"{rule.masked}; this model uses masks")
    try:
        adapted = rule.adapt(copy.deepcopy(config))
    except Refused as refused:
        return Verdict(refused.verdict, refused.reason, refused.config)
    if rule.verdict == REWRITABLE and config.get("activity_regularizer") is not None:
        return Verdict(INFERENCE_ONLY, ACTIVITY_REASON, adapted)
    return Verdict(rule.verdict, rule.reason, adapted)


ACTIVITY_REASON = (
    "has an activity_regularizer: TimeDistributed (Keras 3) adds no activity loss for it, "
    "the layer alone does, so the training loss differs; equal in inference"
)


SUMMARY_KEYS = (
    "units", "equation", "output_shape", "filters", "kernel_size", "activation", "rate",
    "stddev", "axis", "noise_shape", "scale", "negative_slope", "alpha", "target_shape",
    "pool_size",
)  # fmt: skip


def summary(config: dict[str, Any]) -> str:
    """A short ``key=value`` text of the settings that matter (``units=3, activation=relu``)."""
    parts = []
    for key in SUMMARY_KEYS:
        if key in config and config[key] is not None:
            value = config[key]
            if isinstance(value, dict):  # a serialised object, e.g. an activation
                value = value.get("config", {}).get("name") or value.get("class_name")
            parts.append(f"{key}={value}")
    return ", ".join(parts)
