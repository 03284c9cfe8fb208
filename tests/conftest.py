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


@pytest.fixture(scope="session")
def saved_models(tf_keras, tmp_path_factory):
    """Tiny saved models and bad files for scan/rewrite/models (tests/model_files.py)."""
    import model_files

    from tdcheck.engines.tensorflow import quiet

    with quiet():
        return model_files.save_all(tf_keras[1], str(tmp_path_factory.mktemp("models")))
