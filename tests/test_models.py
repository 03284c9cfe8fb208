"""``tdcheck models A B`` and the Python API: compare_models, assert_equivalent."""

from __future__ import annotations

import json

import model_files
import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.errors import ConfigError


def run(runner, *args, columns="200"):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": columns})


@pytest.fixture(scope="module")
def other_weights(tf_keras, tmp_path_factory):
    """The functional model with a different Dense kernel."""
    keras = tf_keras[1]
    model = model_files.functional(keras)
    layer = model.get_layer("td")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel + np.float32(0.25), bias])
    path = str(tmp_path_factory.mktemp("other") / "other.keras")
    model.save(path)
    return path


def test_rewritten_model_is_bitwise_equal(runner, saved_models, rewritten):
    result = run(runner, "models", saved_models["functional"], rewritten, "--checks", "2",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["verdict"] == (
        "EQUIVALENT: the models are bitwise identical on all 2 checks; the same computation "
        "in float64 (3 checks)"
    )
    same = doc["same_computation"]
    assert [(c["check"], c["rule"], c["passed"]) for c in same] == [
        ("stored weights", "exact", True), ("float64 #1 2x5x4", "float64", True),
        ("float64 #2 2x7x4", "float64", True),
    ]  # fmt: skip
    assert same[0]["bitwise_equal"] and same[0]["total"] == 159
    # TimeDistributed and Dense in float64: a few float64 units apart, far inside 2^-36
    assert all(c["margin"] < 1e-3 for c in same[1:])
    assert [(p["layer"], p["class_a"], p["class_b"], p["params_a"], p["params_b"])
            for p in doc["params"]] == [
        ("x", "InputLayer", "InputLayer", 0, 0), ("lstm", "LSTM", "LSTM", 144, 144),
        ("td", "TimeDistributed(Dense)", "Dense", 15, 15),
    ]  # fmt: skip
    assert (doc["a"]["params"], doc["b"]["params"]) == (159, 159)
    assert (doc["a"]["time_distributed"], doc["b"]["time_distributed"]) == (1, 0)
    assert [c["shape_a"] for c in doc["comparisons"]] == [[2, 5, 3], [2, 7, 3]]
    assert doc["tolerance"] == {"atol": 1e-5, "rtol": 1.3e-6, "dtype": "float32",
                                "source": "default"}  # fmt: skip


def test_different_weights_fail_with_the_worst_element(runner, saved_models, other_weights):
    result = run(runner, "models", saved_models["functional"], other_weights, "--checks", "1")
    assert result.exit_code == 1
    out = result.stdout
    assert "NOT EQUIVALENT: 1 of 1 checks failed; worst #1 2x5x4 td at [" in out
    assert "#1 2x5x4 td: 30/30 mismatched; worst at [" in out
    assert "FAIL" in out


def test_loose_tolerance_turns_it_into_a_pass(saved_models, other_weights):
    import tdcheck

    result = tdcheck.compare_models(saved_models["functional"], other_weights, checks=1,
                                    atol=10.0, rtol=0.0)  # fmt: skip
    assert result.passed and result.tolerance.source == "given"
    assert result.verdict().startswith("EQUIVALENT within tolerance (atol 10, rtol 0): 1 checks")


def test_assert_equivalent_message(saved_models, other_weights, tf_keras):
    import tdcheck

    x = model_files.random_input(2, 3)
    with pytest.raises(AssertionError) as info:
        tdcheck.assert_equivalent(saved_models["functional"], other_weights, x, checks=0,
                                  atol=1e-6, rtol=0.0)  # fmt: skip
    keras = tf_keras[1]
    a = keras.models.load_model(saved_models["functional"])(x).numpy()
    b = keras.models.load_model(other_weights)(x).numpy()
    diff = np.abs(b - a)
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    message = str(info.value).splitlines()
    assert message[:3] == ["Models are not equivalent!", "", "given #1, output 'td':"]
    assert message[3] == "  Mismatched elements: 18 / 18 (100.0%)"
    assert message[4].startswith("  Greatest absolute difference: ")
    assert message[4].endswith(f" at index {tuple(int(i) for i in worst)} (up to 1e-06 allowed)")
    assert float(message[4].split()[3]) == float(diff.max())  # full precision, never rounded
    assert message[5].endswith(" (up to 0.0 allowed)")


def test_assert_equivalent_passes_on_the_rewrite(saved_models, rewritten):
    import tdcheck

    result = tdcheck.assert_equivalent(saved_models["functional"], rewritten, checks=1)
    assert bool(result)


def test_in_memory_models_and_a_list_of_arrays(tf_keras, saved_models):
    import tdcheck

    keras = tf_keras[1]
    a = keras.models.load_model(saved_models["two"])
    xs = [model_files.random_input(2, 3, seed=1), model_files.random_input(2, 3, seed=2)]
    result = tdcheck.compare_models(a, a, [xs], checks=0)
    assert [(c.check, c.output) for c in result.comparisons] == [
        ("given #1", "norm"), ("given #1", "sum"),
    ]  # fmt: skip
    assert result.passed


def test_models_with_different_inputs_exit_2(runner, saved_models):
    result = run(runner, "models", saved_models["functional"], saved_models["conv"])
    assert result.exit_code == 2
    assert result.stderr.startswith("tdcheck: error: the models take different inputs: ")


def test_npz_by_input_name_and_markdown(runner, saved_models, rewritten, tmp_path):
    npz = tmp_path / "batch.npz"
    np.savez(npz, x=model_files.random_input(3, 4))
    result = run(runner, "models", saved_models["functional"], rewritten, "--checks", "0",
                 "--input", str(npz), "--format", "markdown")  # fmt: skip
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"## tdcheck models: {saved_models['functional']} vs {rewritten}"
    assert "| td | TimeDistributed(Dense) → Dense | 15 | 0 | bitwise |" in lines
    assert (
        "| A | outer | Functional | x (None, None, 4) float32 | td (None, None, 3) float32 | 159 | 1 |"
        in lines
    )
    assert (
        "| B | outer | Functional | x (None, None, 4) float32 | td (None, None, 3) float32 | 159 | 0 |"
        in lines
    )
    assert any(line.startswith("| input batch.npz | td | (3, 4, 3) | 0 | 0 | 0 | 0/36 | yes |")
               for line in lines)  # fmt: skip


def test_npz_with_wrong_names(runner, saved_models, rewritten, tmp_path):
    npz = tmp_path / "bad.npz"
    np.savez(npz, y=model_files.random_input(1, 2))
    result = run(runner, "models", saved_models["functional"], rewritten, "--input", str(npz))
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: --input {npz}: its arrays ['y'] match neither the input names ['x'] "
        "nor arr_0, arr_1, ...\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--seq", "5,x"], "--seq: expected integers separated by commas, got '5,x'"),
     (["--seq", "0,3"], "--seq: every value must be at least 1, got '0,3'"),
     (["--batch", "0"], "--batch: must be >= 1, got 0"),
     (["--checks", "-1"], "--checks: must be >= 0, got -1"),
     (["--atol", "-1"], "--atol: must be a number >= 0, got -1.0")],
)  # fmt: skip
def test_bad_options_exit_2_before_tensorflow(runner, args, message):
    result = run(runner, "models", "a.keras", "b.keras", *args)
    assert result.exit_code == 2
    assert result.stderr == f"tdcheck: error: {message}\n"


def test_unreadable_model_is_one_line(runner, saved_models):
    result = run(runner, "models", saved_models["weights"], saved_models["functional"])
    assert result.exit_code == 2
    assert "weights only, no layer structure" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_no_inputs_at_all_is_refused(saved_models):
    import tdcheck

    with pytest.raises(ConfigError, match="no inputs to compare on"):
        tdcheck.compare_models(saved_models["functional"], saved_models["functional"], checks=0)


def test_80_columns_tables_fit(runner, saved_models):
    result = run(runner, "models", saved_models["two"], saved_models["two"], "--checks", "1",
                 columns="80")  # fmt: skip
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    start = lines.index("Checks")
    checks = lines[start : lines.index("", start)]
    assert max(len(line) for line in checks) <= 80
    assert sum(line.split()[-2:] == ["yes", "PASS"] for line in checks) == 2  # never cut


def test_a_model_b_that_raises_fails_its_checks_without_crashing(runner, tf_keras, saved_models,
                                                                  tmp_path):  # fmt: skip
    from test_rewrite import _masked_softmax

    path = str(tmp_path / "broken.keras")
    _masked_softmax(tf_keras[1]).save(path)
    result = run(runner, "models", saved_models["functional"], path, "--checks", "1",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert [(c["check"], c["passed"], c["total"], c["shape_b"]) for c in doc["comparisons"]] == [
        ("#1 2x5x4", False, 30, [2, 5, 3])]  # fmt: skip
    assert doc["comparisons"][0]["note"].startswith("raised ValueError: ")
    assert doc["verdict"].startswith("NOT EQUIVALENT: 1 of 1 checks failed; raised ValueError: ")
