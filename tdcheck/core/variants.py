"""The registry of head variants: every way of applying ``Dense(units)`` per timestep.

Each variant builds a Keras layer that maps ``(batch, seq, d)`` to
``(batch, seq, units)`` with a kernel holding ``d * units`` numbers and a bias of
``units``. Layers store the kernel in different shapes (Conv1D keeps
``(1, d, units)``); weights move between variants through the canonical
``(d, units)`` kernel, reshaped, so shared weights are the same numbers.

Adding a variant is one :data:`DESCRIPTIONS` entry here, its builder in
:data:`tdcheck.engines.variant_layers.VARIANTS`, and its test in
``tests/test_variants.py``. Core imports no framework, so listing the variants stays cheap.

>>> VARIANT_NAMES[:2]
('dense', 'time-distributed')
"""

from __future__ import annotations

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


#: Every variant by name, with its description; the Keras builders live in
#: :mod:`tdcheck.engines.variant_layers` (core imports no framework).
DESCRIPTIONS: dict[str, str] = {
    "dense": "Dense(units) applied to the 3-D tensor",
    "time-distributed": "TimeDistributed(Dense(units))",
    "conv1d": "Conv1D(units, kernel_size=1)",
    "einsum": "EinsumDense('abc,cd->abd')",
}
VARIANT_NAMES: tuple[str, ...] = tuple(DESCRIPTIONS)


def layer_name(variant: str) -> str:
    """The Keras layer name of a variant's head: ``time-distributed`` -> ``time_distributed``."""
    return variant.replace("-", "_")
