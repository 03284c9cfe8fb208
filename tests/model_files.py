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


# -- real-world shapes (issue 17): each the smallest model of its kind ---------------------


def ocr_crnn(keras):
    """A CRNN OCR model whose variable axis is the image WIDTH, axis 2: input (batch, 8,
    width) -> columns as timesteps -> TD(Conv1D) -> TD(Flatten) -> TD(Dense) -> BiLSTM ->
    TD(Dense(softmax)). TD(Conv1D) and TD(Flatten) stay, and keep the predict bug."""
    layers = keras.layers
    x = keras.Input((8, None), name="image")
    h = layers.Permute((2, 1), name="columns")(x)  # (batch, width, 8)
    h = layers.Reshape((-1, 4, 2), name="patches")(h)  # (batch, width, 4, 2)
    h = layers.TimeDistributed(layers.Conv1D(2, 3, padding="same",
                                             kernel_initializer=_init(keras, 11)),
                               name="td_conv")(h)  # fmt: skip
    h = layers.TimeDistributed(layers.Flatten(), name="td_flatten")(h)  # (batch, width, 8)
    h = td_dense(keras, "td_dense", 12)(h)
    h = layers.Bidirectional(layers.LSTM(2, return_sequences=True,
                                         kernel_initializer=_init(keras, 13)), name="bilstm")(h)  # fmt: skip
    y = layers.TimeDistributed(layers.Dense(5, activation="softmax",
                                            kernel_initializer=_init(keras, 14)), name="ctc")(h)  # fmt: skip
    return keras.Model(x, y, name="crnn")


STATEFUL_BATCH = 16


def stateful_char_rnn(keras):
    """A stateful char-RNN: fixed batch 16, Embedding -> stateful LSTM -> TD(Dense)."""
    layers = keras.layers
    return keras.Sequential(
        [keras.Input(batch_shape=(STATEFUL_BATCH, None), dtype="int32", name="chars"),
         layers.Embedding(6, 4, embeddings_initializer=_init(keras, 21), name="embed"),
         layers.LSTM(HIDDEN, return_sequences=True, stateful=True, name="lstm",
                     kernel_initializer=_init(keras, 22)),
         td_dense(keras, "td", 23)],
        name="char_rnn",
    )  # fmt: skip


def han(keras):
    """A hierarchical attention network: TD(encoder) over sentences, where the encoder (a
    Functional model) holds the file's only TD(Dense)."""
    layers = keras.layers
    words = keras.Input((5,), dtype="int32", name="words")
    e = layers.Embedding(6, 4, embeddings_initializer=_init(keras, 31), name="embed")(words)
    e = layers.GRU(HIDDEN, return_sequences=True, kernel_initializer=_init(keras, 32),
                   name="word_gru")(e)  # fmt: skip
    e = td_dense(keras, "word_proj", 33)(e)
    e = layers.GlobalAveragePooling1D(name="attend")(e)
    encoder = keras.Model(words, e, name="encoder")
    doc = keras.Input((None, 5), dtype="int32", name="doc")
    s = layers.TimeDistributed(encoder, name="sentences")(doc)
    s = layers.GRU(HIDDEN, kernel_initializer=_init(keras, 34), name="sentence_gru")(s)
    y = layers.Dense(2, activation="softmax", kernel_initializer=_init(keras, 35), name="out")(s)
    return keras.Model(doc, y, name="han")


def frcnn_head(keras):
    """A Faster R-CNN classifier head over ROIs: TD(Flatten) -> TD(Dense 256) x2 -> class
    and box outputs. Sized so that at batch 1 float32 rounding exceeds the fixed atol."""
    layers = keras.layers

    def dense(units, seed, activation=None):
        return layers.Dense(units, activation=activation,
                            kernel_initializer=keras.initializers.RandomNormal(stddev=0.2,
                                                                               seed=seed))  # fmt: skip

    rois = keras.Input((None, 4, 4, 64), name="rois")
    f = layers.TimeDistributed(layers.Flatten(), name="flatten")(rois)
    f = layers.TimeDistributed(dense(256, 41, "relu"), name="fc1")(f)
    f = layers.TimeDistributed(dense(128, 42, "relu"), name="fc2")(f)
    cls = layers.TimeDistributed(dense(21, 43, "softmax"), name="cls")(f)
    box = layers.TimeDistributed(dense(84, 44), name="box")(f)
    return keras.Model(rois, [cls, box], name="frcnn")


REAL_WORLD = {"ocr": ocr_crnn, "stateful": stateful_char_rnn, "han": han, "frcnn": frcnn_head}


def save_real_world(keras, folder) -> dict[str, str]:
    """Save the real-world models as .keras, the Keras 2-style .h5 files beside them."""
    paths = {}
    for name, build in REAL_WORLD.items():
        paths[name] = os.path.join(folder, f"{name}.keras")
        build(keras).save(paths[name])
    paths["keras2_like"] = keras2_style_h5(keras, os.path.join(folder, "keras2_like.h5"))
    return paths


def lstm_tagger(keras):
    """``Input((None, 4)) -> LSTM(4) -> TD(Dense(3))`` as a Sequential (a Keras 2 classic)."""
    return keras.Sequential(
        [keras.Input((None, FEATURES)),
         keras.layers.LSTM(HIDDEN, return_sequences=True, kernel_initializer=_init(keras, 51),
                           name="lstm"),
         td_dense(keras, "td", 52)],
        name="tagger",
    )  # fmt: skip


def keras2_style_h5(keras, path, time_major=False) -> str:
    """:func:`lstm_tagger` saved as .h5 by Keras 3, its config given the Keras 2 argument
    ``time_major`` that Keras 3 refuses (what tf_keras writes for every LSTM)."""
    import json
    import warnings

    import h5py

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .h5 is legacy
        lstm_tagger(keras).save(path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "LSTM":
                layer["config"]["time_major"] = time_major
        handle.attrs["model_config"] = json.dumps(config)
    return path


def tf_keras_h5(tf_keras_module, path) -> str:
    """The same tagger built and saved by Keras 2 itself (tf_keras), with its weights."""
    import warnings

    k = tf_keras_module
    model = k.Sequential(
        [k.layers.InputLayer(input_shape=(None, FEATURES)),
         k.layers.LSTM(HIDDEN, return_sequences=True, name="lstm"),
         k.layers.TimeDistributed(k.layers.Dense(UNITS), name="td")],
        name="tagger",
    )  # fmt: skip
    model.compile(optimizer="adam", loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return path
