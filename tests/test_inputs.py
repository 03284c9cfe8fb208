"""User input files: never unpickled, always checked."""

from __future__ import annotations

import numpy as np
import pytest

from tdcheck.core.inputs import load_npy, make_input
from tdcheck.errors import ConfigError


def test_make_input_kinds():
    assert (
        make_input("ones", batch=2, seq=3, features=4, seed=0).tolist()
        == np.ones((2, 3, 4)).tolist()
    )
    a = make_input("random", batch=2, seq=3, features=4, seed=5)
    b = make_input("random", batch=2, seq=3, features=4, seed=5)
    assert np.array_equal(a, b) and a.shape == (2, 3, 4)
    assert not np.array_equal(a, make_input("random", batch=2, seq=3, features=4, seed=6))


def test_loads_a_good_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert load_npy(str(path)).shape == (2, 3, 4)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 4)), "has shape (3, 4); it must be 3-D (batch, seq, features)"),
        (np.zeros((1, 2, 3, 4)), "has shape (1, 2, 3, 4); it must be 3-D (batch, seq, features)"),
        (np.zeros((1, 0, 4)), "has shape (1, 0, 4); no size may be 0"),
        (np.array([[[np.nan, 1.0]]]), "holds 1 NaN or infinite value(s)"),
        (np.array([[[np.inf, -np.inf]]]), "holds 2 NaN or infinite value(s)"),
        (
            np.zeros((1, 2, 2), np.complex64),
            "holds dtype complex64; it must be a real numeric array",
        ),
        (np.array([[["a", "b"]]]), "holds dtype <U1; it must be a real numeric array"),
    ],
)
def test_bad_arrays(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ConfigError) as info:
        load_npy(str(path))
    assert info.value.message == f"--input: {str(path)!r} {message}"


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[[{"a": 1}]]], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError) as info:
        load_npy(str(path))
    assert info.value.message == (
        f"--input: {str(path)!r} holds Python objects; tdcheck never unpickles files"
    )


def test_not_an_npy_file(tmp_path):
    path = tmp_path / "text.npy"
    path.write_text("hello")
    with pytest.raises(ConfigError, match=r"is not a \.npy file"):
        load_npy(str(path))


def test_npz_is_refused(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros((1, 2, 3)))
    with pytest.raises(ConfigError, match=r"is an \.npz archive"):
        load_npy(str(path))
