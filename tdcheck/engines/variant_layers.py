"""The Keras layer each head variant builds (names and descriptions:
:mod:`tdcheck.core.variants`). Keras is imported only inside the builders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tdcheck.core.variants import DESCRIPTIONS, HeadSpec


@dataclass(frozen=True)
class Variant:
    """One registry entry: ``build(spec)`` returns an unbuilt Keras layer."""

    name: str
    description: str
    build: Callable[[HeadSpec], Any]


def _dense(spec: HeadSpec) -> Any:
    from keras import layers

    return layers.Dense(
        spec.units,
        activation=spec.activation,
        kernel_initializer=spec.kernel_initializer,
        bias_initializer=spec.bias_initializer,
        name=spec.name,
        dtype=spec.dtype,
    )


def _time_distributed(spec: HeadSpec) -> Any:
    from keras import layers

    inner = _dense(HeadSpec(**{**spec.__dict__, "name": f"{spec.name}_dense"}))
    return layers.TimeDistributed(inner, name=spec.name, dtype=spec.dtype)


def _conv1d(spec: HeadSpec) -> Any:
    from keras import layers

    return layers.Conv1D(
        spec.units,
        kernel_size=1,
        activation=spec.activation,
        kernel_initializer=spec.kernel_initializer,
        bias_initializer=spec.bias_initializer,
        name=spec.name,
        dtype=spec.dtype,
    )


def _einsum(spec: HeadSpec) -> Any:
    from keras import layers

    return layers.EinsumDense(
        "abc,cd->abd",
        output_shape=(None, spec.units),
        bias_axes="d",
        activation=spec.activation,
        kernel_initializer=spec.kernel_initializer,
        bias_initializer=spec.bias_initializer,
        name=spec.name,
        dtype=spec.dtype,
    )


_BUILDERS: dict[str, Callable[[HeadSpec], Any]] = {
    "dense": _dense,
    "time-distributed": _time_distributed,
    "conv1d": _conv1d,
    "einsum": _einsum,
}
VARIANTS: dict[str, Variant] = {
    name: Variant(name, DESCRIPTIONS[name], _BUILDERS[name]) for name in DESCRIPTIONS
}
