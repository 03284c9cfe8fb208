"""Shared fixtures. TensorFlow is imported lazily by the tests that need it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def tf_keras():
    """``(tf, keras)`` imported once, quietly."""
    from tdcheck.engines.tensorflow import load_tensorflow

    return load_tensorflow()


@pytest.fixture(scope="session")
def has_gpu(tf_keras) -> bool:
    from tdcheck.engines.tensorflow import gpu_names

    return bool(gpu_names(tf_keras[0]))


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()
