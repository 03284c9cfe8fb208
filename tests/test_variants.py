"""Every registered variant: builds, stores d*units + units weights, matches Dense."""

from __future__ import annotations

import numpy as np
import pytest

import tdcheck
from tdcheck.core.variants import VARIANT_NAMES, HeadSpec, layer_name
from tdcheck.engines.variant_layers import VARIANTS

#: The kernel shape each layer stores for d=5 inputs and 2 units.
STORED_KERNEL = {
    "dense": (5, 2),
    "time-distributed": (5, 2),
    "conv1d": (1, 5, 2),
    "einsum": (5, 2),
}
LAYER_TYPES = {
    "dense": "Dense",
    "time-distributed": "TimeDistributed(Dense)",
    "conv1d": "Conv1D",
    "einsum": "EinsumDense",
}


def test_registry_is_complete_and_ordered():
    assert VARIANT_NAMES == ("dense", "time-distributed", "conv1d", "einsum")
    assert set(STORED_KERNEL) == set(VARIANTS)
    assert layer_name("time-distributed") == "time_distributed"


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_layer_shapes(tf_keras, name):
    _, keras = tf_keras
    spec = HeadSpec(2, "linear", "glorot_uniform", "zeros", name=layer_name(name))
    layer = VARIANTS[name].build(spec)
    out = layer(keras.ops.ones((3, 7, 5)))
    assert tuple(out.shape) == (3, 7, 2)
    kernel, bias = layer.get_weights()
    assert kernel.shape == STORED_KERNEL[name]
    assert bias.shape == (2,)
    assert layer.count_params() == 12


@pytest.mark.parametrize("name", VARIANT_NAMES[1:])
def test_variant_agrees_with_dense_and_oracle(name):
    result = tdcheck.compare(
        variants=f"dense,{name}", initializer="glorot_uniform", bias_initializer="random_normal:1",
        input="random", hidden=6, seq=4, batch=2, seed=3,
    )  # fmt: skip
    assert result.passed, result.verdict()
    assert [row["type"] for row in result.layers][2:] == ["Dense", LAYER_TYPES[name]]
    assert [row["params"] for row in result.layers] == [0, 4 * 6 * (4 + 6 + 1), 14, 14]
    (pair,) = [c for c in result.comparisons if not c.involves_oracle]
    assert (pair.a, pair.b) == (name, "dense")
    stored = result.arrays[f"weights/{name}/kernel"]
    np.testing.assert_array_equal(stored.reshape(6, 2), result.arrays["weights/dense/kernel"])
