"""Shared fixtures. TensorFlow is imported lazily by the tests that need it."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

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


def junit_counts_of(path) -> tuple[int, int, int]:
    """Parse JUnit XML back: (tests, failures, errors) counted from the testcases, after
    checking that the attributes of ``testsuites`` and every ``testsuite`` say the same."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    counts = (
        len(cases),
        sum(c.find("failure") is not None for c in cases),
        sum(c.find("error") is not None for c in cases),
    )
    for node in (root, *root.findall("testsuite")):
        assert (int(node.get("tests")), int(node.get("failures")), int(node.get("errors"))) == (
            counts
        )
    return counts


@pytest.fixture
def junit_counts():
    return junit_counts_of


@pytest.fixture(scope="session")
def saved_models(tf_keras, tmp_path_factory):
    """Tiny saved models and bad files for scan/rewrite/models (tests/model_files.py)."""
    import model_files

    from tdcheck.engines.tensorflow import quiet

    with quiet():
        return model_files.save_all(tf_keras[1], str(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="session")
def rewritten(saved_models, tmp_path_factory):
    """saved_models["functional"] rewritten by tdcheck (written once, read by the tests)."""
    import tdcheck

    out = str(tmp_path_factory.mktemp("rewritten") / "fast.keras")
    tdcheck.rewrite(saved_models["functional"], out, checks=1, timing=False)
    return out
