"""Issue 10: non-finite values, dtype policy on every layer, bounds in real runs, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

import tdcheck
from tdcheck.cli import cli
from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    ("value", "dtype", "message"),
    [
        (1e300, "float32", "12 value(s) do not fit float32, the compute dtype of --dtype float32"
         " (largest magnitude 1e+300, first at [0, 0, 0]; float32 holds up to 3.40282e+38)"),
        (100000, "float16", "do not fit float16, the compute dtype of --dtype float16 (largest "
         "magnitude 100000, first at [0, 0, 0]; float16 holds up to 65504)"),
        (70000.0, "mixed_float16", "do not fit float16, the compute dtype of --dtype "
         "mixed_float16"),
        (3.5e38, "bfloat16", "do not fit bfloat16"),
    ],
)  # fmt: skip
def test_input_that_overflows_the_compute_dtype_is_refused(runner, tmp_path, value, dtype, message):
    path = tmp_path / "x.npy"
    np.save(path, np.full((1, 3, 4), value, dtype=np.int64 if isinstance(value, int) else None))
    result = runner.invoke(cli, ["compare", "--input", str(path), "--dtype", dtype])
    assert result.exit_code == 2
    assert "tdcheck: error: --input: 12 value(s) do not fit" in result.output
    assert message in result.output
    assert "they would become inf" in result.output


def test_the_largest_value_that_fits_is_accepted(tmp_path):
    x = np.zeros((1, 2, 4))
    x[0, 0, 0] = 65519.0  # rounds to 65504 in float16, not to inf
    path = tmp_path / "x.npy"
    np.save(path, x)
    from tdcheck.commands.compare import prepare

    _, got = prepare(input=str(path), dtype="float16")
    assert got[0, 0, 0] == 65519.0
    with pytest.raises(ConfigError, match="1 value"):
        x[0, 1, 2] = -65520.0
        np.save(path, x)
        prepare(input=str(path), dtype="float16")


def _overflowing_run(tmp_path, **options):
    # rnn none, kernel of ones: z = 4 * 60000 = 240000, inf in float16; finite in the oracle
    path = tmp_path / "x.npy"
    np.save(path, np.full((1, 3, 4), 60000.0))
    return tdcheck.compare(
        input=str(path), rnn="none", dtype="float16", initializer="constant:1", **options
    )


def test_inf_produced_inside_the_model_is_never_agreement(tmp_path):
    r = _overflowing_run(tmp_path)
    assert not r.passed and r.exit_code == 1
    pair, *oracle = r.comparisons
    assert (pair.a, pair.b) == ("time-distributed", "dense")
    assert not pair.passed and pair.stats.mismatched == 6
    assert pair.stats.note == "non-finite values: actual 6 inf; expected 6 inf"
    assert pair.stats.max_abs_diff == float("inf") and pair.stats.margin == float("inf")
    assert all(not c.passed for c in oracle)
    assert oracle[0].stats.note == "non-finite values: actual 6 inf; expected none"
    verdict = r.verdict()
    assert "agrees to 0" not in verdict and verdict.startswith("NOT EQUIVALENT")
    assert "non-finite values" in verdict


def test_equal_nan_accepts_matching_specials_between_variants_only(tmp_path):
    r = _overflowing_run(tmp_path, equal_nan=True)
    pair, *oracle = r.comparisons
    assert pair.passed and pair.stats.bitwise_equal
    assert all(not c.passed for c in oracle)  # inf against the oracle's 240000 still fails
    assert not r.passed


EXPECTED_COMPUTE = {
    "float32": "float32", "float64": "float64", "float16": "float16",
    "bfloat16": "bfloat16", "mixed_float16": "float16",
}  # fmt: skip


@pytest.mark.parametrize("dtype", list(EXPECTED_COMPUTE))
@pytest.mark.parametrize(
    "extra", [{}, {"lengths": "3,1"}, {"rnn": "none"}, {"rnn": "none", "lengths": "2,3"}]
)
def test_every_layer_computes_in_the_requested_dtype(tf_keras, dtype, extra):
    from tdcheck.engines.keras_model import build_model

    _, keras = tf_keras
    cfg = CompareConfig(
        dtype=dtype, batch=2, seq=3, variants="dense,time-distributed,conv1d,einsum", **extra
    ).validated().resolve_sizes(None)  # fmt: skip
    built = build_model(cfg, keras)
    layers = [layer for layer in built.model.layers if type(layer).__name__ != "InputLayer"]
    inner = [layer.layer for layer in layers if hasattr(layer, "layer")]
    names = {type(layer).__name__ for layer in layers}
    assert ("Masking" in names) == ("lengths" in extra)
    for layer in layers + inner:
        assert layer.compute_dtype == EXPECTED_COMPUTE[dtype], (layer.name, layer.compute_dtype)
    assert built.model.inputs[0].dtype == ("float32" if dtype == "mixed_float16" else dtype)


@pytest.mark.parametrize("extra", [{"lengths": "3,1"}, {"rnn": "none"}])
def test_float64_with_a_mask_or_without_trunk_agrees_with_the_oracle(extra):
    r = tdcheck.compare(
        dtype="float64", batch=2, seq=3, input="random", initializer="glorot_uniform",
        bias_initializer="random_normal:0.5", grad=True, **extra,
    )  # fmt: skip
    assert r.passed, r.verdict()
    assert r.arrays["features"].dtype == np.float64
    outputs = [c for c in r.comparisons if c.kind == "output" and c.b == "oracle"]
    assert outputs and all(c.stats.max_abs_diff < 1e-14 for c in outputs)


# -- saved arrays: a third party re-judges every verdict with NumPy alone -----------------------

U = {"float32": 2.0**-24, "float64": 2.0**-53}
ETA = {"float32": 2.0**-150, "float64": 2.0**-1075}


def _gamma(n, u):
    return n * u / (1 - n * u)


def _linear_head_bound(h, w, b, dtype):
    # |fl(hW + b) - (hW + b)| <= gamma_{d+3} (|h||W| + |b|) + (d+3) eta
    d = w.shape[0]
    return _gamma(d + 3, U[dtype]) * (np.abs(h) @ np.abs(w) + np.abs(b)) + (d + 3) * ETA[dtype]


def _linear_grad_bound(h, r, dtype):
    # dW = h^T R, db = sum R; R rounded once: dg = u |R|
    u, n = U[dtype], h.shape[0] * h.shape[1]
    hd, rd = np.abs(h).reshape(n, -1), np.abs(r).reshape(n, -1)
    dg = u * rd
    g = _gamma(n + 2, u)
    extra = (n + 2) * ETA[dtype]
    return {
        "head.kernel": g * (hd.T @ (rd + dg)) + hd.T @ dg + extra,
        "head.bias": g * (rd + dg).sum(0) + dg.sum(0) + extra,
    }


def rejudge(path):
    """Every comparison of a saved float32, linear-head run, re-judged from the archive."""
    import json

    data = np.load(path, allow_pickle=False)
    meta = json.loads(data["meta/report.json"].tobytes())
    report = meta["report"]
    h, r = data["features"].astype(np.float64), data["gradients/R"]
    h64 = data["features/oracle"]
    weights = {}
    for v in report["config"]["variants"]:
        bias = data[f"weights/{v}/bias"].astype(np.float64)
        weights[v] = (data[f"weights/{v}/kernel"].astype(np.float64).reshape(-1, bias.size), bias)

    def head_bound(v):
        w, b = weights[v]
        return _linear_head_bound(h, w, b, "float32") + _linear_head_bound(h, w, b, "float64")

    def grad_bound(v, q):
        return _linear_grad_bound(h, r, "float32")[q] + _linear_grad_bound(h, r, "float64")[q]

    verdicts = []
    for c in report["comparisons"]:
        a = data[c["arrays"][0]].astype(np.float64)
        b = data[c["arrays"][1]].astype(np.float64)
        if c["rule"] == "atol/rtol":
            allowed = c["atol"] + c["rtol"] * np.abs(b)
        elif c["rule"] == "scaled":  # atol + rtol |b| + 7 u sqrt(batch * seq) rms(b)
            rms = np.sqrt(np.mean(b * b))
            allowed = c["atol"] + c["rtol"] * np.abs(b) + 7 * U["float32"] * np.sqrt(8) * rms
        elif c["kind"] == "output" and c["b"] == "oracle":
            w, bias = weights[c["a"]]
            carried = np.abs((h @ w + bias) - (h64 @ w + bias))
            allowed = head_bound(c["a"]) + carried + 2 * _linear_head_bound(h64, w, bias, "float64")
        elif c["kind"] == "output":
            allowed = head_bound(c["a"]) + head_bound(c["b"])
        elif c["b"] == "oracle":
            allowed = grad_bound(c["a"], c["quantity"])
        else:
            allowed = grad_bound(c["a"], c["quantity"]) + grad_bound(c["b"], c["quantity"])
        diff = np.abs(a - b)
        margin = float(np.max(np.where(diff == 0, 0.0, diff / allowed)))
        verdicts.append((c["rule"], bool(np.all(diff <= allowed)), margin))
    return report, verdicts


@pytest.mark.parametrize("weights", ["shared", "independent"])
def test_a_saved_archive_is_rejudged_by_numpy_alone_with_the_same_verdicts(
    runner, tmp_path, weights
):
    path = tmp_path / "a.npz"
    result = run(
        runner, "compare", "--quiet", "--grad", "--train-steps", "2", "--input", "random",
        "--initializer", "glorot_uniform", "--bias-initializer", "random_normal:0.5",
        "--variants", "dense,time-distributed,conv1d", "--batch", "2", "--seq", "4",
        "--weights", weights, "--save-arrays", str(path),
    )  # fmt: skip
    assert result.exit_code == (0 if weights == "shared" else 1)
    report, verdicts = rejudge(path)
    rules = {rule for rule, _, _ in verdicts}
    assert rules == {"bound", "atol/rtol", "scaled"}
    # outputs: 2 pairs, the trunk, 3 oracle; gradients: 2 pairs x 6 quantities, 3 x (head
    # kernel, head bias, input) against the oracle; trained: 2 pairs x 5 weights, 2 outputs
    assert len(verdicts) == len(report["comparisons"]) == 6 + 2 * 6 + 3 * 3 + 2 * 5 + 2
    for c, (rule, passed, margin) in zip(report["comparisons"], verdicts, strict=True):
        assert (c["rule"], c["passed"]) == (rule, passed), c["arrays"]
        assert margin == pytest.approx(c["margin"], rel=1e-6, abs=1e-12), c["arrays"]
    if weights == "independent":
        failed = {tuple(c["arrays"]) for c in report["comparisons"] if not c["passed"]}
        assert ("outputs/time-distributed", "outputs/dense") in failed
        # every head still agrees with its own oracle: the failure names the pairs only
        assert not any(c["b"] == "oracle" and not c["passed"] for c in report["comparisons"])


def test_bfloat16_arrays_are_saved_as_float32_with_their_dtype(runner, tmp_path):
    import json

    path = tmp_path / "a.npz"
    result = run(runner, "compare", "-q", "--dtype", "bfloat16", "--save-arrays", str(path))
    assert result.exit_code == 0
    with np.load(path, allow_pickle=False) as data:
        assert data["outputs/dense"].dtype == np.float32
        assert data["outputs/oracle/dense"].dtype == np.float64
        meta = json.loads(data["meta/report.json"].tobytes())
    assert meta["original_dtypes"]["outputs/dense"] == "bfloat16"
    assert meta["original_dtypes"]["weights/dense/kernel"] == "bfloat16"
    assert meta["report"]["config"]["dtype"] == "bfloat16"
    assert meta["report"]["environment"]["tensorflow"]
    assert "0x6772" in meta["generators"]["gradients/R"]


def test_verdict_separates_an_oracle_disagreement_from_disagreeing_variants():
    # TensorFlow's float64 erf (gelu) is accurate to ~5e-9: the heads agree bit for bit with
    # each other and both miss the oracle.
    r = tdcheck.compare(dtype="float64", activation="gelu", input="random")
    assert not r.passed
    verdict = r.verdict()
    assert verdict.startswith(
        "ORACLE DISAGREES: the variants are bitwise identical, but 2 of 4 comparisons failed; "
        "worst dense vs oracle at ["
    )
    assert "over the bound rule (at most 1 passes)" in verdict
    worst = max(r.failures, key=lambda c: c.stats.margin)
    s = worst.stats
    # the values are printed in full (shortest round-trip repr), not to 3 figures
    assert f": {s.worst_a!r} vs {s.worst_b!r};" in verdict
    assert float(verdict.split(": ")[2].split(" vs ")[0]) == s.worst_a


def test_verdict_prints_float32_values_with_their_shortest_round_trip_repr():
    from tdcheck.core.result import CompareResult, Comparison
    from tdcheck.core.stats import compare_arrays

    a = np.array([132.00002], np.float32)
    b = np.array([132.0], np.float32)
    c = Comparison("gradient", "time-distributed", "dense",
                   compare_arrays(a, b, atol=0, rtol=0), "head.bias")  # fmt: skip
    r = CompareResult({}, {}, [], 0, [c])
    assert r.verdict() == (
        "NOT EQUIVALENT: 1 of 1 comparison failed (the variants disagree); worst "
        "time-distributed vs dense [head.bias] at [0]: 132.00002 vs 132.0; would pass with "
        "atol >= 1.53e-05 (rtol 0) or rtol >= 1.16e-07 (atol 0)"
    )


def test_elu_near_zero_is_judged_with_its_cancellation():
    # Found by the property test: TensorFlow evaluates elu(z) as exp(z) - 1 for z < 0, an
    # absolute error of about u when z is near 0, where |elu(z)| = 1.26e-4 is tiny.
    r = tdcheck.compare(
        features=4, hidden=1, units=1, seq=1, batch=1, rnn="simple-rnn", initializer="he_normal",
        activation="elu", input="ones", seed=104,
    )  # fmt: skip
    assert r.passed, r.verdict()
    oracle = r.comparisons[-1]
    assert abs(oracle.stats.worst_b) < 2e-4 and 0.001 < oracle.stats.margin < 0.1


@pytest.mark.parametrize(
    ("kinds", "who"),
    [
        (["output"], "the variants disagree"),
        (["cross-backend"], "the backends disagree"),
        (["baseline"], "this run disagrees with the baseline"),
        (["cross-backend", "baseline"], "the backends and the baseline disagree"),
        (["output", "baseline"], "the variants disagree"),
    ],
)
def test_verdict_names_who_disagrees(kinds, who):
    from tdcheck.core.result import CompareResult, Comparison
    from tdcheck.core.stats import compare_arrays

    bad = compare_arrays(np.array([1.0], np.float32), np.array([2.0], np.float32), atol=0, rtol=0)
    comparisons = [Comparison(kind, "dense@jax", "dense@tensorflow", bad) for kind in kinds]
    verdict = CompareResult({}, {}, [], 0, comparisons).verdict()
    assert verdict.startswith(f"NOT EQUIVALENT: {len(kinds)} of {len(kinds)} ")
    assert f" failed ({who}); worst " in verdict
