"""Option validation, parsing and the memory estimate (no TensorFlow needed)."""

from __future__ import annotations

import pytest

from tdcheck.core.config import (
    ACTIVATIONS,
    CompareConfig,
    InitializerSpec,
    format_bytes,
    parse_initializer,
    parse_memory,
    parse_variants,
)
from tdcheck.errors import ConfigError


def test_defaults_reproduce_the_seed():
    cfg = CompareConfig().validated().resolve_sizes(None)
    assert (cfg.batch, cfg.seq, cfg.features, cfg.hidden, cfg.units) == (1, 3, 4, 5, 2)
    assert cfg.variants == ("dense", "time-distributed")
    assert cfg.tolerances() == (1e-5, 1.3e-6)
    assert cfg.head_input_size == 5


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("constant:0.1", InitializerSpec("constant", 0.1)),
        ("glorot_uniform", InitializerSpec("glorot_uniform")),
        ("Glorot-Uniform", InitializerSpec("glorot_uniform")),
        ("random_normal:0.5", InitializerSpec("random_normal", 0.5)),
        ("random_uniform:2", InitializerSpec("random_uniform", 2.0)),
        ("zeros", InitializerSpec("zeros")),
    ],
)
def test_parse_initializer(spec, expected):
    assert parse_initializer(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "--initializer: unknown initializer 'nope'; choose from constant, zeros"),
        ("constant", "--initializer: 'constant' needs a value, e.g. constant:0.1"),
        ("constant:abc", "--initializer: 'abc' is not a number (in 'constant:abc')"),
        ("constant:nan", "--initializer: the value must be finite (got 'constant:nan')"),
        ("glorot_uniform:1", "--initializer: initializer 'glorot_uniform' takes no value"),
        ("random_normal:-1", "--initializer: the stddev of 'random_normal' must be > 0"),
    ],
)
def test_parse_initializer_errors(spec, message):
    with pytest.raises(ConfigError) as info:
        parse_initializer(spec)
    assert info.value.message.startswith(message)
    assert info.value.exit_code == 2


def test_initializer_spec_round_trips_as_text():
    assert str(parse_initializer("constant:0.1")) == "constant:0.1"
    assert str(parse_initializer("he_normal")) == "he_normal"


def test_parse_variants():
    assert parse_variants("dense, conv1d,einsum") == ("dense", "conv1d", "einsum")
    with pytest.raises(ConfigError, match="unknown variant 'lstm'"):
        parse_variants("dense,lstm")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_variants("dense,dense")
    with pytest.raises(ConfigError, match="at least one variant"):
        parse_variants(" , ")


@pytest.mark.parametrize(
    ("spec", "value"),
    [("4GiB", 4 * 1024**3), ("512MB", 512_000_000), ("1000", 1000), ("1.5k", 1500), (7, 7)],
)
def test_parse_memory(spec, value):
    assert parse_memory(spec) == value


@pytest.mark.parametrize("spec", ["lots", "-1GB", "0", "4 GiBs"])
def test_parse_memory_errors(spec):
    with pytest.raises(ConfigError, match="--max-memory"):
        parse_memory(spec)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024**3) == "3.0 GiB"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hidden": 0}, "--hidden: must be > 0 (got 0)"),
        ({"units": -2}, "--units: must be > 0 (got -2)"),
        ({"seq": 0}, "--seq: must be > 0 (got 0)"),
        ({"batch": -1}, "--batch: must be > 0 (got -1)"),
        ({"features": 0}, "--features: must be > 0 (got 0)"),
        (
            {"rnn": "lstm2"},
            "--rnn: unknown value 'lstm2' (did you mean 'lstm'?); choose from lstm, gru, simple-rnn, none",
        ),
        ({"atol": 1e-3}, "--atol and --rtol go together: give both or neither"),
        ({"rtol": 1e-3}, "--atol and --rtol go together: give both or neither"),
        ({"atol": -1.0, "rtol": 0.0}, "--atol: must be a finite number >= 0 (got -1.0)"),
        ({"atol": 0.0, "rtol": float("nan")}, "--rtol: must be a finite number >= 0 (got nan)"),
        ({"variants": ("dense",), "oracle": False}, "nothing to compare: one variant and"),
        ({"input": "/no/such/file.npy"}, "--input: no such file '/no/such/file.npy'"),
        ({"activation": "mish"}, "--activation: unknown value 'mish'"),
        ({"seed": -1}, "--seed: must be a whole number 0..4294967295 (got -1)"),
    ],
)
def test_validation_messages(options, message):
    with pytest.raises(ConfigError) as info:
        CompareConfig(**options).validated()
    assert info.value.message.startswith(message)


def test_explicit_tolerances_override_the_table():
    cfg = CompareConfig(atol=0.0, rtol=0.0, dtype="float64").validated()
    assert cfg.tolerances() == (0.0, 0.0)
    assert CompareConfig(dtype="float64").validated().tolerances() == (1e-10, 1e-9)


def test_sizes_from_an_input_shape():
    cfg = CompareConfig(input="ones").resolve_sizes((2, 7, 3))
    assert (cfg.batch, cfg.seq, cfg.features) == (2, 7, 3)
    with pytest.raises(ConfigError) as info:
        CompareConfig(seq=5, input="x.npy").resolve_sizes((2, 7, 3))
    assert info.value.message == (
        "--seq 5 disagrees with the input file 'x.npy', whose shape (batch, seq, features) "
        "is (2, 7, 3)"
    )


def test_memory_limit_refuses_before_allocating():
    huge = CompareConfig(hidden=4096, seq=100_000, batch=64).validated().resolve_sizes(None)
    assert huge.estimated_bytes() > 4 * 1024**3
    with pytest.raises(
        ConfigError, match=r"needs about 5.2 TiB, over the 4.0 GiB limit; shrink it"
    ):
        huge.check_memory()
    small = CompareConfig().validated().resolve_sizes(None)
    assert small.estimated_bytes() < 1024**2
    small.check_memory()


def test_max_memory_raises_the_limit():
    cfg = CompareConfig(hidden=4096, seq=100_000, batch=64, max_memory="100TiB")
    cfg.validated().resolve_sizes(None).check_memory()


def test_every_activation_has_an_oracle():
    from tdcheck.core.oracle import ACTIVATIONS as ORACLE_ACTIVATIONS

    assert set(ACTIVATIONS) == set(ORACLE_ACTIVATIONS)


def test_to_dict_lists_every_option():
    d = CompareConfig().validated().resolve_sizes(None).to_dict()
    assert d["variants"] == ["dense", "time-distributed"]
    assert d["initializer"] == "constant:0.1"
    assert set(d) >= {"features", "hidden", "units", "seq", "batch", "rnn", "dtype", "device"}
