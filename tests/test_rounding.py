"""core/rounding.py (the statistical rule) against hand-computed arrays."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tdcheck.core import faults, rounding


def unit_scale(exact: np.ndarray) -> rounding.Scale:
    """sigma 1, no slack, no duplicates: the statistics are the raw errors."""
    ones = np.ones(exact.shape)
    return rounding.Scale(ones, np.zeros(exact.shape), exact, np.zeros(exact.shape, bool))


def test_thresholds_solve_their_defining_equations():
    p = 1e-9
    for m in (1, 10, 400, 10_000):
        q = rounding.rms_threshold(m, p)
        assert q > 1
        assert q - 1 - math.log(q) == pytest.approx(2 * math.log(1 / p) / m, rel=1e-9)
    assert rounding.rms_threshold(400, p) > rounding.rms_threshold(10_000, p)
    assert rounding.direction_threshold(1e-9) == pytest.approx(math.sqrt(2 * math.log(2e9)))
    assert rounding.direction_threshold(1e-9) == pytest.approx(6.5447, abs=1e-4)


def test_tree_sum_squares_is_the_worst_summation_order():
    terms = np.array([0.5, -3.0, 2.0, 1.25])
    got = float(rounding.tree_sum_squares(terms))
    # sorted |terms| 3, 2, 1.25, 0.5: prefixes 5, 6.25, 6.75
    assert got == 5.0**2 + 6.25**2 + 6.75**2
    # every left-to-right order: the sum of its squared partial sums is at most that
    worst = max(
        sum(sum(abs(t) for t in order[:j]) ** 2 for j in range(2, 5))
        for order in itertools.permutations(terms)
    )
    assert worst == got
    # and a balanced tree ((a+b)+(c+d)) stays below it too
    a, b, c, d = np.abs(terms)
    assert (a + b) ** 2 + (c + d) ** 2 + (a + b + c + d) ** 2 <= got


def test_a_constant_shift_fails_on_the_bias_direction_and_not_on_rms():
    exact = np.zeros(400)
    r = rounding.judge(exact + 0.5, exact, unit_scale(exact))
    # T = sum(v * t), v = 1/sqrt(400) everywhere: 0.5 * 20 = 10
    assert r.statistics["bias"] == pytest.approx(10.0)
    assert r.statistics["rms"] == pytest.approx(0.25)
    assert r.worst == "bias" and not r.passed
    lam = r.statistics["direction_threshold"]
    assert lam == pytest.approx(rounding.direction_threshold(1e-9 / 2 / 3))
    assert r.margin == pytest.approx(10.0 / lam)


def test_errors_of_random_sign_pass_and_large_ones_fail_on_rms():
    exact = np.zeros(400)
    signs = np.where(np.arange(400) % 2 == 0, 1.0, -1.0)
    small = rounding.judge(exact + 0.5 * signs, exact, unit_scale(exact))
    assert small.passed and small.statistics["bias"] == 0.0
    large = rounding.judge(exact + 3.0 * signs, exact, unit_scale(exact))
    q = rounding.rms_threshold(400, 1e-9 / 2 / 3)
    assert large.statistics["rms"] == 9.0 and large.worst == "rms"
    assert large.margin == pytest.approx(9.0 / q) and not large.passed


def test_a_scaling_fails_on_the_scale_direction():
    exact = np.linspace(-1.0, 1.0, 401)
    r = rounding.judge(exact * 2.0, exact, unit_scale(exact))
    # e = y, v = y / |y|: T = |y| = sqrt(sum of squares) = 11.6
    assert r.statistics["scale"] == pytest.approx(float(np.sqrt(np.sum(exact * exact))))
    assert r.statistics["scale"] == pytest.approx(11.5902, abs=1e-4)
    assert r.statistics["bias"] == pytest.approx(0.0, abs=1e-12)
    assert not r.passed and r.worst == "scale"


def test_slack_and_duplicates_are_taken_out():
    exact = np.zeros(400)
    scale = unit_scale(exact)
    scale.slack = np.full(400, 0.5)
    assert rounding.judge(exact + 0.5, exact, scale).passed  # within the deterministic part
    r = rounding.judge(exact + 0.6, exact, scale)
    assert r.statistics["rms"] == pytest.approx(0.01)
    assert r.margin == pytest.approx(
        max(0.6 * 20 - 0.5 * 20, 0) / r.statistics["direction_threshold"]
    )
    scale.duplicate = np.arange(400) >= 4  # only 4 distinct computations
    assert rounding.judge(exact + 0.6, exact, scale).elements == 4
    assert not rounding.judge(exact + np.nan, exact, unit_scale(exact)).passed


def test_head_scale_by_hand():
    h = np.array([[1.0, 2.0]])
    w = np.array([[0.5], [0.25]])
    b = np.array([0.0])
    s = rounding.head_scale(h, w, b, "linear", "float32")
    u = 2.0**-24
    # terms |p| = 0.5, 0.5, |b| = 0: additions (0.5+0.5)^2 + 1^2 = 2; sum p^2 = 0.5; S = 1
    grow = rounding.growth(2 + 1 + 2, 1, u, 1e-9 / 4)
    assert float(s.sigma[0, 0]) == pytest.approx(u * grow * math.sqrt(2 + 0.5 + 1), rel=1e-12)
    assert float(s.exact[0, 0]) == 1.0
    assert s.duplicate.tolist() == [[False]]
    assert rounding.growth(515, 8192, 2.0**-8, 2.5e-10) > 3  # bfloat16, 512 inputs
    assert rounding.growth(10**6, 10**6, 2.0**-8, 1e-9) == math.inf


def test_rows_that_repeat_are_duplicates():
    h = np.array([[[1.0, 2.0], [1.0, 2.0], [0.5, 2.0]]])
    w = np.array([[0.5, 0.5], [0.25, 0.25]])
    s = rounding.head_scale(h, w, np.zeros(2), "linear", "float32")
    assert s.duplicate.tolist() == [[[False, True], [True, True], [False, True]]]


def simulated_head(dtype: str, d: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    h = faults.round_to(np.tanh(0.5 * rng.standard_normal((8, 32, d))), dtype)
    limit = math.sqrt(6 / (d + 32))
    w = faults.round_to(rng.uniform(-limit, limit, (d, 32)), dtype)
    b = faults.round_to(0.5 * rng.standard_normal(32), dtype)
    return h, w, b


@pytest.mark.parametrize(
    ("dtype", "k_missed", "k_found"),
    [("float32", 2, 16), ("float16", 2, 16), ("bfloat16", 4, 16)],
)
def test_healthy_heads_pass_and_a_scaled_kernel_is_caught(dtype, k_missed, k_found):
    h, w, b = simulated_head(dtype, 64)
    scale = rounding.head_scale(h, w, b, "linear", dtype)
    # healthy: computed in the dtype (bfloat16: float32 products, rounded sum and bias)
    if dtype == "bfloat16":
        y = faults.round_to(faults.round_to(h @ w, dtype) + b, dtype)
    else:
        y = (h.astype(dtype) @ w.astype(dtype) + b.astype(dtype)).astype(np.float64)
    assert rounding.judge(y, scale.exact, scale).passed
    for k, caught in ((k_missed, False), (k_found, True)):
        wk = faults.scaled_kernel(w, k, dtype)
        yk = faults.round_to(h @ wk + b, dtype)
        assert (not rounding.judge(yk, scale.exact, scale).passed) == caught, k
    dropped = faults.round_to(h @ w, dtype)
    r = rounding.judge(dropped, scale.exact, scale)
    assert not r.passed and r.margin > 10


def test_stats_carries_the_verdict_and_its_line():
    exact = np.zeros(400)
    s = rounding.stats(exact + 0.5, exact, unit_scale(exact))
    assert s.rule == "statistical" and not s.passed and s.margin > 1
    assert s.note.startswith("statistical over 400 elements: worst bias T = 10 (threshold ")
    assert s.mismatched == 0  # no element is beyond lam on its own: the bias gives it away
    with pytest.raises(ValueError, match="softmax"):
        rounding.head_scale(np.ones((1, 2)), np.ones((2, 2)), np.zeros(2), "softmax", "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("d", [64, 512])
def test_a_float32_accumulator_tightens_the_model_to_one_unit(dtype, d):
    # What every CPU framework measured does: float32 products and sums, the product
    # rounded to the dtype, then the bias addition rounded (engines' accumulation probe).
    h, w, b = simulated_head(dtype, d)
    wide = rounding.head_scale(h, w, b, "linear", dtype, accumulate="float32")
    narrow = rounding.head_scale(h, w, b, "linear", dtype)
    assert np.all(wide.sigma < narrow.sigma)
    healthy = faults.round_to(faults.round_to(h @ w, dtype) + b, dtype)
    r = rounding.judge(healthy, wide.exact, wide)
    assert r.passed and r.margin < 0.3, r.margin
    one_unit = faults.scaled_kernel(w, 1, dtype)  # kernel x (1 + u): 0.39 % in bfloat16
    yk = faults.round_to(faults.round_to(h @ one_unit, dtype) + b, dtype)
    assert not rounding.judge(yk, wide.exact, wide).passed
    assert rounding.judge(yk, narrow.exact, narrow).passed  # the dtype's u everywhere: missed


def test_mixed_precision_casts_are_a_known_offset():
    rng = np.random.default_rng(3)
    h = faults.round_to(np.tanh(rng.standard_normal((8, 32, 32))), "float16")
    w, b = rng.standard_normal((32, 8)) / 6, rng.standard_normal(8)  # float32 variables
    scale = rounding.head_scale(h, w, b, "linear", "mixed_float16", accumulate="float32")
    w16, b16 = faults.round_to(w, "float16"), faults.round_to(b, "float16")
    centre = faults.round_to(faults.round_to(h @ w16, "float16") + b16, "float16")
    assert np.array_equal(scale.exact, centre)  # the cast weights, computed as the engine does
    assert np.array_equal(scale.offset, centre - (h @ w + b))  # from the stored weights
    pair = rounding.pair_scale(scale, rounding.head_scale(h, w, b, "linear", "float64"))
    healthy = faults.round_to(faults.round_to(h @ w16, "float16") + b16, "float16")
    r = rounding.judge(healthy, h @ w + b, pair)  # against the stored weights' exact head
    assert r.passed and r.margin < 0.3, r.margin
    scaled = faults.round_to(w * (1 + 4 * 2.0**-11), "float16")  # +0.2 %
    yk = faults.round_to(faults.round_to(h @ scaled, "float16") + b16, "float16")
    assert not rounding.judge(yk, h @ w + b, pair).passed


def test_the_accumulation_probe_tells_float32_from_the_dtype():
    ops = rounding.accumulation_operands(16, 32, 4, "float16")
    assert len(ops) == 64 and sum(a.shape[0] * b.shape[1] for a, b in ops) == 4096
    assert all(np.array_equal(a, faults.round_to(a, "float16")) for a, _ in ops)
    right = [faults.round_to(a @ b, "float16") for a, b in ops]
    assert rounding.accumulation_found(right, ops, "float16") == "float32"
    # one unit off in 5 % of the elements: more than double rounding explains
    off = [r.copy() for r in right]
    for r in off:
        flat = r.reshape(-1)
        flat[::20] = np.nextafter(flat[::20].astype(np.float16), np.float16(np.inf))
    assert rounding.accumulation_found(off, ops, "float16") == "float16"
    # two units off in one element: not a float32 accumulator rounded once
    far = [r.copy() for r in right]
    far[0][0, 0] *= 1 + 2 * 2.0**-10
    assert rounding.accumulation_found(far, ops, "float16") == "float16"
    assert rounding.accumulation_found([], [], "float32") == "float32"


@pytest.mark.parametrize("fused", [False, True])
def test_a_small_product_on_a_large_bias_is_no_systematic_error(fused):
    # bfloat16, |hW| below half a unit of the bias: fl(hW + b) = b in every row, an error
    # of -hW each time, perfectly correlated with the output. Modelled as random draws it
    # grew with the rows (scale T = 3.3 at 4096 rows, GRU H384); computed, it is no error.
    rng = np.random.default_rng(7)
    h = faults.round_to(np.tanh(rng.standard_normal((64, 64, 32))), "bfloat16")
    w = faults.round_to(rng.standard_normal((32, 4)) * 1e-4, "bfloat16")
    b = faults.round_to(np.array([3.0, -5.0, 7.0, 1.0]), "bfloat16")
    scale = rounding.head_scale(h, w, b, "linear", "bfloat16", accumulate="float32")
    p = h @ w
    assert np.all(np.abs(p[..., :3]) < 2.0**-9 * np.abs(b[:3]))  # swamped
    y = faults.round_to(p + b if fused else faults.round_to(p, "bfloat16") + b, "bfloat16")
    assert np.array_equal(y[..., :3], np.broadcast_to(b[:3], y[..., :3].shape))
    r = rounding.judge(y, h @ w + b, scale)
    assert r.passed and r.margin < 0.5, (r.worst, r.margin)
    dropped = faults.round_to(faults.round_to(p, "bfloat16"), "bfloat16")  # bias dropped
    assert not rounding.judge(dropped, h @ w + b, scale).passed
