"""The models of issue 16's "done when", tiny: each has TimeDistributed on a variable-length
time axis, so its plain ``model.export()`` is wrong whenever batch != length.

Shared by tests/test_export*.py and benchmarks/export_table.py.
"""

from __future__ import annotations

FEATURES = 4


def _init(keras, seed):
    return keras.initializers.RandomNormal(stddev=0.5, seed=seed)


def lstm(keras):
    """The issue's model: ``Input((None, 4)) -> LSTM(8) -> TimeDistributed(Dense(3))``."""
    x = keras.Input((None, FEATURES), name="x")
    h = keras.layers.LSTM(8, return_sequences=True, kernel_initializer=_init(keras, 1))(x)
    y = keras.layers.TimeDistributed(
        keras.layers.Dense(3, kernel_initializer=_init(keras, 2)), name="td"
    )(h)
    return keras.Model(x, y, name="lstm_td")


def tagger(keras):
    """``Embedding(mask_zero=True) -> Bidirectional(LSTM) -> TimeDistributed(Dense)`` x2."""
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(20, 6, mask_zero=True, embeddings_initializer=_init(keras, 3))(x)
    h = keras.layers.Bidirectional(
        keras.layers.LSTM(5, return_sequences=True, kernel_initializer=_init(keras, 4))
    )(h)
    h = keras.layers.TimeDistributed(
        keras.layers.Dense(8, activation="relu", kernel_initializer=_init(keras, 5)), name="td_1"
    )(h)
    y = keras.layers.TimeDistributed(
        keras.layers.Dense(4, activation="softmax", kernel_initializer=_init(keras, 6)),
        name="td_2",
    )(h)
    return keras.Model(x, y, name="tagger")


def forecaster(keras):
    """``GRU -> TimeDistributed(Sequential([Dense, Dense]))``: a nested model per step."""
    head = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="tanh", kernel_initializer=_init(keras, 7)),
            keras.layers.Dense(1, kernel_initializer=_init(keras, 8)),
        ],
        name="head",
    )
    x = keras.Input((None, FEATURES), name="series")
    h = keras.layers.GRU(6, return_sequences=True, kernel_initializer=_init(keras, 9))(x)
    y = keras.layers.TimeDistributed(head, name="td_head")(h)
    return keras.Model(x, y, name="forecaster")


def video(keras):
    """``TimeDistributed(Conv2D) -> TimeDistributed(GlobalAveragePooling2D) -> Dense``
    on ``(batch, frames, 6, 6, 1)``."""
    x = keras.Input((None, 6, 6, 1), name="frames")
    h = keras.layers.TimeDistributed(
        keras.layers.Conv2D(3, 3, activation="relu", kernel_initializer=_init(keras, 10)),
        name="td_conv",
    )(x)
    h = keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D(), name="td_pool")(h)
    y = keras.layers.Dense(2, kernel_initializer=_init(keras, 11), name="dense")(h)
    return keras.Model(x, y, name="video")


BUILDERS = {"lstm": lstm, "tagger": tagger, "forecaster": forecaster, "video": video}
