"""Tiny saved Keras models for the scan / rewrite / models tests (hidden 4, units 3).

Built once per session by the ``saved`` fixture in each test module; every builder
returns a Keras model with deterministic weights (seeded initialisers).
"""

from __future__ import annotations

import os

import numpy as np

FEATURES, HIDDEN, UNITS = 4, 4, 3


def _init(keras, seed):
    return keras.initializers.RandomNormal(stddev=0.5, seed=seed)


def td_dense(keras, name="td", seed=1):
    return keras.layers.TimeDistributed(
        keras.layers.Dense(UNITS, kernel_initializer=_init(keras, seed),
                           bias_initializer=_init(keras, seed + 100)),
        name=name,
    )  # fmt: skip


def functional(keras):
    """``Input((None, 4)) -> LSTM(4) -> TimeDistributed(Dense(3))``: the issue's model."""
    x = keras.Input((None, FEATURES), name="x")
    h = keras.layers.LSTM(HIDDEN, return_sequences=True, name="lstm",
                          kernel_initializer=_init(keras, 7))(x)  # fmt: skip
    return keras.Model(x, td_dense(keras)(h), name="outer")


def sequential(keras):
    return keras.Sequential(
        [keras.Input((None, FEATURES)), td_dense(keras, "td_a"), td_dense(keras, "td_b", 2)],
        name="seq",
    )


def nested(keras):
    i = keras.Input((None, FEATURES))
    inner = keras.Model(i, td_dense(keras, "td_1")(i), name="inner")
    x = keras.Input((None, FEATURES), name="a")
    return keras.Model(x, inner(x), name="outer")


def masked(keras):
    """Masking -> LSTM -> TD(Dense) -> LSTM: the mask must reach the second LSTM."""
    x = keras.Input((None, FEATURES), name="x")
    h = keras.layers.Masking(mask_value=0.0)(x)
    h = keras.layers.LSTM(HIDDEN, return_sequences=True, kernel_initializer=_init(keras, 3))(h)
    h = td_dense(keras)(h)
    y = keras.layers.LSTM(2, kernel_initializer=_init(keras, 4), name="last")(h)
    return keras.Model(x, y, name="masked")


def two_inputs_two_outputs(keras):
    """Two inputs, one TD layer shared by both, a second TD layer, two outputs."""
    a = keras.Input((None, FEATURES), name="a")
    b = keras.Input((None, FEATURES), name="b")
    shared = td_dense(keras, "shared")
    norm = keras.layers.TimeDistributed(keras.layers.LayerNormalization(), name="norm")
    ya = norm(shared(a))
    yb = keras.layers.Add(name="sum")([shared(b), ya])
    return keras.Model([a, b], [ya, yb], name="two")


def conv(keras):
    """TimeDistributed(Conv2D) on (batch, time, 5, 5, 1): left alone."""
    x = keras.Input((None, 5, 5, 1))
    y = keras.layers.TimeDistributed(keras.layers.Conv2D(2, 3), name="td_conv")(x)
    return keras.Model(x, y, name="video")


BUILDERS = {
    "functional": functional,
    "sequential": sequential,
    "nested": nested,
    "masked": masked,
    "two": two_inputs_two_outputs,
    "conv": conv,
}


def save_all(keras, folder) -> dict[str, str]:
    """Save every model as .keras (and the functional one as .h5 too); a few bad files."""
    paths = {}
    for name, build in BUILDERS.items():
        model = build(keras)
        paths[name] = os.path.join(folder, f"{name}.keras")
        model.save(paths[name])
        if name == "functional":
            paths["h5"] = os.path.join(folder, "functional.h5")
            model.save(paths["h5"])
            paths["weights"] = os.path.join(folder, "functional.weights.h5")
            model.save_weights(paths["weights"])
    with open(paths["functional"], "rb") as handle:
        data = handle.read()
    paths["truncated"] = os.path.join(folder, "truncated.keras")
    with open(paths["truncated"], "wb") as handle:
        handle.write(data[: len(data) // 2])
    paths["text"] = os.path.join(folder, "notes.keras")
    with open(paths["text"], "w") as handle:
        handle.write("not a model\n")
    return paths


def random_input(batch, seq, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, seq, FEATURES)).astype("float32")
