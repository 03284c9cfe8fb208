"""The registry of head variants: every way of applying ``Dense(units)`` per timestep.

Each variant builds a Keras layer that maps ``(batch, seq, d)`` to
``(batch, seq, units)`` with a kernel holding ``d * units`` numbers and a bias of
``units``. Layers store the kernel in different shapes (Conv1D keeps
``(1, d, units)``); weights move between variants through the canonical
``(d, units)`` kernel, reshaped, so shared weights are the same numbers.

Adding a variant is one :data:`VARIANTS` entry (a name, a description and a
builder) plus its test in ``tests/test_variants.py``. Keras is imported only
inside the builders, so listing the variants stays cheap.

>>> VARIANT_NAMES[:2]
('dense', 'time-distributed')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HeadSpec:
    """What every head is built from."""

    units: int
    activation: str
    kernel_initializer: Any
    bias_initializer: Any
    name: str
    dtype: Any = None


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


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dense", "Dense(units) applied to the 3-D tensor", _dense),
        Variant("time-distributed", "TimeDistributed(Dense(units))", _time_distributed),
        Variant("conv1d", "Conv1D(units, kernel_size=1)", _conv1d),
        Variant("einsum", "EinsumDense('abc,cd->abd')", _einsum),
    )
}
VARIANT_NAMES: tuple[str, ...] = tuple(VARIANTS)


def layer_name(variant: str) -> str:
    """The Keras layer name of a variant's head: ``time-distributed`` -> ``time_distributed``."""
    return variant.replace("-", "_")
