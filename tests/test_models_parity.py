"""Users' models at parity with the built-in model: per-layer weights, --save-arrays, --junit,
--equal-nan, per-output tolerances and --backend for ``models``, ``rewrite`` and
``assert_equivalent``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import model_files
import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.errors import EnvironmentProblem


def run(runner, *args, columns="200"):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": columns})


@pytest.fixture(scope="module")
def bias_moved(tf_keras, saved_models, tmp_path_factory):
    """The saved functional model with its Dense bias moved by 0.05 (float32)."""
    keras = tf_keras[1]
    model = keras.models.load_model(saved_models["functional"])
    layer = model.get_layer("td")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + np.float32(0.05)])
    path = str(tmp_path_factory.mktemp("bias") / "bias.keras")
    model.save(path)
    moved = (bias + np.float32(0.05)).astype(np.float64) - bias.astype(np.float64)
    return path, float(np.abs(moved).max())


def _layers(doc):
    return {p["layer"]: p for p in doc["params"]}


def test_a_bias_moved_by_005_shows_its_layer_differing(runner, saved_models, bias_moved):
    path, moved = bias_moved
    result = run(runner, "models", saved_models["functional"], path, "--checks", "1",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 1
    layers = _layers(json.loads(result.stdout))
    assert layers["td"]["weights"] == "differ" and layers["td"]["equal"] is False
    assert layers["td"]["max_abs_diff"] == moved and abs(moved - 0.05) < 1e-7
    assert layers["td"]["bitwise_equal"] is False
    assert (layers["lstm"]["weights"], layers["lstm"]["max_abs_diff"]) == ("bitwise", 0.0)
    assert layers["lstm"]["equal"] is True
    assert (layers["x"]["weights"], layers["x"]["max_abs_diff"]) == ("none", None)
    table = run(runner, "models", saved_models["functional"], path, "--checks", "1").stdout
    rows = [line.split() for line in table.splitlines()]
    assert ["td", "TimeDistributed(Dense)", "15", f"{moved:.3g}", "DIFFER"] in rows
    assert ["lstm", "LSTM", "144", "0", "bitwise"] in rows
    assert ["total", "159", "1", "differ"] in rows


def test_after_a_rewrite_td_x_is_matched_to_x(runner, saved_models, rewritten):
    result = run(runner, "models", saved_models["functional"], rewritten, "--checks", "1",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0
    td = _layers(json.loads(result.stdout))["td"]
    assert (td["class_a"], td["class_b"], td["weights"], td["max_abs_diff"], td["equal"]) == (
        "TimeDistributed(Dense)", "Dense", "bitwise", 0.0, True)  # fmt: skip
    table = run(runner, "models", saved_models["functional"], rewritten, "--checks", "1")
    assert ["td", "TimeDistributed(Dense)", "→", "Dense", "15", "0", "bitwise"] in [
        line.split() for line in table.stdout.splitlines()
    ]


def _rejudge(path):
    """Re-judge every check of a --save-arrays archive with NumPy alone."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta/report.json").tobytes())
    verdicts = []
    for c in meta["report"]["comparisons"]:
        b, a = (arrays[k].astype(np.float64) for k in c["arrays"])
        diff = np.abs(b - a)
        # rewrite's float64 shadow judges by a stored element-wise allowance
        allowed = arrays.get(c["arrays"][0].replace("models/b/outputs/", "models/allowed/"))
        limit = c["atol"] + c["rtol"] * np.abs(a) if allowed is None else allowed
        verdicts.append((bool(np.all(diff <= limit)), diff.max(),
                         c["passed"], c["max_abs_diff"]))  # fmt: skip
    return meta, arrays, verdicts


def test_models_save_arrays_and_junit(runner, saved_models, bias_moved, tmp_path):
    path, moved = bias_moved
    npz, xml = tmp_path / "x.npz", tmp_path / "j.xml"
    result = run(runner, "models", saved_models["functional"], path, "--checks", "2",
                 "--save-arrays", str(npz), "--junit", str(xml))  # fmt: skip
    assert result.exit_code == 1
    meta, arrays, verdicts = _rejudge(npz)
    assert [(ok, float(d)) for ok, d, _, _ in verdicts] == [(p, m) for _, _, p, m in verdicts]
    assert [p for _, _, p, _ in verdicts] == [False, False]
    assert meta["report"]["check_labels"] == ["#1 2x5x4", "#2 2x7x4"]
    assert arrays["inputs/0/x"].shape == (2, 5, 4) and arrays["inputs/1/x"].shape == (2, 7, 4)
    assert arrays["models/a/outputs/1/td"].shape == (2, 7, 3)
    bias_a, bias_b = arrays["models/a/weights/td/1"], arrays["models/b/weights/td/1"]
    assert float(np.abs(bias_b.astype(np.float64) - bias_a).max()) == moved
    assert arrays["models/a/weights/lstm/0"].shape == (4, 16)
    root = ET.parse(xml).getroot()
    cases = root.findall("testsuite/testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("tdcheck.models", "#1 2x5x4 [td]"), ("tdcheck.models", "#2 2x7x4 [td]")]  # fmt: skip
    assert [c.find("failure") is not None for c in cases] == [True, True]
    assert root.get("tests") == "2" and root.get("failures") == "2"


def test_equal_nan_makes_nans_in_the_same_place_agree(runner, saved_models, rewritten, tmp_path):
    # NaN *input* is refused as compare refuses it, --equal-nan or not (exit 2, one line) ...
    x = model_files.random_input(2, 3)
    x[1, 2, 0] = np.nan
    npz = tmp_path / "nan.npz"
    np.savez(npz, x=x)
    args = ["models", saved_models["functional"], rewritten, "--checks", "0", "--input",
            str(npz), "--format", "json"]  # fmt: skip
    for extra in ([], ["--equal-nan"]):
        refused = run(runner, *args, *extra)
        assert refused.exit_code == 2
        assert "1 NaN or infinite value(s) (first at [1, 2, 0])" in refused.stderr
    # ... --equal-nan is for NaN a model produces: NaNs in the same place agree, by the judge
    from tdcheck.core.judge import judge_outputs, tolerance_for_outputs

    y = np.array([[1.0, np.nan], [np.inf, 2.0]], np.float32)
    tol = tolerance_for_outputs("float32", ["y"], None, None)
    (strict,) = judge_outputs("c", ["y"], [y], [y.copy()], tol)
    (loose,) = judge_outputs("c", ["y"], [y], [y.copy()], tol, equal_nan=True)
    assert not strict.passed and "NaN" in strict.stats.note
    assert loose.passed and loose.stats.mismatched == 0
    moved = np.array([[np.nan, 1.0], [np.inf, 2.0]], np.float32)  # NaN in another place
    (elsewhere,) = judge_outputs("c", ["y"], [moved], [y], tol, equal_nan=True)
    assert not elsewhere.passed


def test_per_output_tolerances(runner, saved_models, tmp_path, tf_keras):
    keras = tf_keras[1]
    model = keras.models.load_model(saved_models["two"])
    layer = model.get_layer("shared")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + np.array([0.01, 0, 0], np.float32)])  # LayerNorm keeps it
    path = str(tmp_path / "two_moved.keras")
    model.save(path)
    base = ["models", saved_models["two"], path, "--checks", "1", "--format", "json"]
    doc = json.loads(run(runner, *base).stdout)
    assert {c["output"]: c["passed"] for c in doc["comparisons"]} == {"norm": False,
                                                                       "sum": False}  # fmt: skip
    result = run(runner, *base, "--atol", "1e-6", "--atol", "sum=0.5", "--rtol", "0")
    doc = json.loads(result.stdout)
    assert {c["output"]: (c["atol"], c["rtol"], c["passed"]) for c in doc["comparisons"]} == {
        "norm": (1e-6, 0.0, False), "sum": (0.5, 0.0, True)}  # fmt: skip
    assert doc["tolerance"]["per_output"] == {"sum": {"atol": 0.5, "rtol": 0.0}}
    assert result.exit_code == 1
    unknown = run(runner, *base, "--atol", "logits=1e-4")
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "tdcheck: error: --atol: the models have no output named 'logits'; their outputs are: "
        "norm, sum\n"
    )
    bad = run(runner, "models", "a.keras", "b.keras", "--rtol", "sum=x")
    assert (bad.exit_code, bad.stderr) == (
        2, "tdcheck: error: --rtol: expected FLOAT or OUTPUT=FLOAT, got 'sum=x'\n")  # fmt: skip


def test_assert_equivalent_takes_per_output_tolerances_and_writes_files(
    saved_models, bias_moved, tmp_path
):
    import tdcheck

    path, _ = bias_moved
    npz, xml = tmp_path / "a.npz", tmp_path / "a.xml"
    result = tdcheck.assert_equivalent(saved_models["functional"], path, checks=1,
                                       atol={"td": 0.06}, rtol=0.0, save_arrays=str(npz),
                                       junit=str(xml))  # fmt: skip
    assert result.passed and result.comparisons[0].stats.atol == 0.06
    _, _, verdicts = _rejudge(npz)
    assert [(ok, p) for ok, _, p, _ in verdicts] == [(True, True)]
    assert ET.parse(xml).getroot().get("failures") == "0"
    with pytest.raises(AssertionError, match="Models are not equivalent"):
        tdcheck.assert_equivalent(saved_models["functional"], path, checks=1, atol={"td": 0.04},
                                  rtol=0.0)  # fmt: skip


def test_rewrite_save_arrays_junit_and_the_80_column_tables(runner, saved_models, tmp_path):
    npz, xml = tmp_path / "r.npz", tmp_path / "r.xml"
    result = run(runner, "rewrite", saved_models["two"], "--dry-run", "--no-timing", "--checks",
                 "2", "--save-arrays", str(npz), "--junit", str(xml), columns="80")  # fmt: skip
    assert result.exit_code == 0, result.output
    meta, arrays, verdicts = _rejudge(npz)
    doc = meta["report"]
    # 2 checks x 2 outputs, called, in float64 (the shadow) and predicted: 12 comparisons
    assert doc["command"] == "rewrite" and len(verdicts) == len(doc["comparisons"]) == 12
    assert all(ok and p for ok, _, p, _ in verdicts)
    assert arrays["models/a/weights/shared/0"].shape == (4, 3)
    np.testing.assert_array_equal(arrays["models/a/weights/norm/0"],
                                  arrays["models/b/weights/norm/0"])  # fmt: skip
    assert ET.parse(xml).getroot().get("tests") == "12"
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if "─" in line or "PASS" in line) <= 80
    start = lines.index("Checks")
    table = lines[start : lines.index("", start)]
    rows = [line.split() for line in table[3:]]
    assert [row[0] for row in rows[:12]] == ["call"] * 4 + ["float64"] * 4 + ["predict"] * 4
    assert all(row[-1] == "PASS" and row[3] in ("norm", "sum") for row in rows[:12])
    assert "weights: all 5 layers bitwise identical to the original's" in lines


def test_models_tables_fit_80_columns_one_line_per_row(runner, saved_models, rewritten):
    result = run(runner, "models", saved_models["functional"], rewritten, "--checks", "3",
                 columns="80")  # fmt: skip
    lines = result.stdout.splitlines()
    for title, rows in (("Checks (output 'td')", 3), ("Layers (matched by name)", 3)):
        start = lines.index(title)
        table = lines[start : lines.index("", start)] if "" in lines[start:] else lines[start:]
        assert max(len(line) for line in table) <= 80
        body = [line for line in table[3:] if line.strip() and "─" not in line]
        assert len(body) >= rows  # flat: one line per row, no stacked label lines
    check_rows = [line.split() for line in lines if line.startswith(" #")]
    assert [row[0] for row in check_rows] == ["#1", "#2", "#3"]
    assert all(row[-2:] == ["yes", "PASS"] for row in check_rows)


def test_backend_choice_runs_saved_models_in_a_worker(runner, saved_models, rewritten, tf_keras):
    pytest.importorskip("jax")
    import tdcheck

    result = tdcheck.compare_models(saved_models["functional"], rewritten, checks=1,
                                    backend="jax", keep_arrays=True)  # fmt: skip
    assert result.passed and result.backend == "jax"
    assert result.notes == [
        # JAX runs float64 as float32 without JAX_ENABLE_X64: no float64 check, said so.
        "no float64 check: A (outer): JAX computes float64 as float32 unless JAX_ENABLE_X64=1 "
        "is set (set it to check in float64)",
        "ran on jax in a worker process (this process already runs Keras on tensorflow)",
    ]
    assert result.arrays["models/a/outputs/0/td"].shape == (2, 5, 3)
    cli_run = run(runner, "models", saved_models["functional"], rewritten, "--checks", "1",
                  "--backend", "jax", "--format", "json")  # fmt: skip
    assert cli_run.exit_code == 0 and json.loads(cli_run.stdout)["backend"] == "jax"
    keras = tf_keras[1]
    model = keras.models.load_model(saved_models["functional"])
    with pytest.raises(EnvironmentProblem, match="models or inputs held in memory") as info:
        tdcheck.compare_models(model, rewritten, checks=1, backend="jax")
    assert info.value.exit_code == 3
    with pytest.raises(EnvironmentProblem, match="already runs Keras on tensorflow"):
        tdcheck.rewrite(saved_models["functional"], dry_run=True, backend="jax")


@pytest.mark.parametrize("command", ["models", "rewrite"])
def test_keras_backend_jax_runs_without_importing_tensorflow(command, saved_models, rewritten):
    pytest.importorskip("jax")
    args = ([saved_models["functional"], rewritten] if command == "models"
            else [saved_models["functional"], "--dry-run", "--no-timing"])  # fmt: skip
    # TDCHECK_DEBUG keeps stderr open while Keras imports, so -X importtime lists everything
    env = {**os.environ, "KERAS_BACKEND": "jax", "COLUMNS": "80", "TDCHECK_DEBUG": "1"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tdcheck", command, *args, "--checks", "1",
         "--format", "json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["backend"] == "jax" and doc["passed"] is True
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "jax" in imported and "keras" in imported
    assert not {name for name in imported if name.split(".")[0] == "tensorflow"}
