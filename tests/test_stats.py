"""The comparison statistics against hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdcheck.core.stats import compare_arrays, ulp_distance


def test_identical_arrays_are_bitwise_equal_and_pass():
    a = np.array([[1.5, -2.0], [0.0, 3.25]], np.float32)
    s = compare_arrays(a, a.copy(), atol=0.0, rtol=0.0)
    assert s.passed and bool(s)
    assert s.bitwise_equal
    assert (s.max_abs_diff, s.max_rel_diff, s.mean_abs_diff, s.max_ulp) == (0.0, 0.0, 0.0, 0)
    assert (s.mismatched, s.total) == (0, 4)
    assert (s.min_atol, s.min_rtol) == (0.0, 0.0)


def test_hand_computed_differences():
    actual = np.array([1.0, 2.0, -3.0, 0.0])
    expected = np.array([1.0, 2.5, -2.0, 0.0])
    # diffs 0, 0.5, 1.0, 0; rel 0, 0.2, 0.5, 0
    s = compare_arrays(actual, expected, atol=0.6, rtol=0.0)
    assert s.max_abs_diff == 1.0
    assert s.max_rel_diff == 0.5
    assert s.mean_abs_diff == pytest.approx(0.375)
    assert s.mismatched == 1
    assert s.worst_index == (2,)
    assert (s.worst_a, s.worst_b) == (-3.0, -2.0)
    assert not s.passed and not bool(s)
    assert not s.bitwise_equal
    # min atol at rtol 0 is the max diff; min rtol at atol 0.6: (1.0 - 0.6) / 2.0 = 0.2
    assert s.min_atol == 1.0
    assert s.min_rtol == pytest.approx(0.2)


def test_tolerance_formula_is_atol_plus_rtol_times_reference():
    expected = np.array([100.0])
    # allowed = 0.5 + 0.01 * 100 = 1.5
    assert compare_arrays(np.array([101.5]), expected, atol=0.5, rtol=0.01).passed
    assert not compare_arrays(np.array([101.51]), expected, atol=0.5, rtol=0.01).passed
    # the reference is b: |a| is not used
    assert not compare_arrays(np.array([0.0]), np.array([1.0]), atol=0.0, rtol=0.9).passed


def test_min_tolerances_would_pass_exactly():
    rng = np.random.default_rng(3)
    b = rng.standard_normal((4, 5))
    a = b + rng.standard_normal((4, 5)) * 1e-3
    s = compare_arrays(a, b, atol=1e-6, rtol=1e-5)
    assert not s.passed
    assert compare_arrays(a, b, atol=s.min_atol * (1 + 1e-12), rtol=1e-5).passed
    assert compare_arrays(a, b, atol=1e-6, rtol=s.min_rtol * (1 + 1e-12)).passed
    assert not compare_arrays(a, b, atol=s.min_atol * 0.99, rtol=1e-5).passed


def test_zero_reference_gives_infinite_relative_difference():
    s = compare_arrays(np.array([0.0, 1e-3]), np.array([0.0, 0.0]), atol=1e-2, rtol=0.0)
    assert s.passed
    assert s.max_rel_diff == math.inf
    assert s.max_abs_diff == 1e-3
    assert s.min_rtol == 0.0  # atol alone covers it


def test_matching_nans_and_infinities_are_never_agreement():
    a = np.array([np.nan, np.inf, -np.inf, 1.0])
    s = compare_arrays(a, a.copy(), atol=1.0, rtol=1.0)
    assert not s.passed
    assert s.mismatched == 3 and s.worst_index == (0,)
    assert s.max_abs_diff == math.inf and s.margin == math.inf
    assert s.max_ulp is None
    assert s.note == "non-finite values: actual 1 NaN, 2 inf; expected 1 NaN, 2 inf"


def test_equal_nan_counts_matching_specials_as_equal():
    a = np.array([np.nan, np.inf, -np.inf, 1.0])
    s = compare_arrays(a, a.copy(), atol=0.0, rtol=0.0, equal_nan=True)
    assert s.passed and s.bitwise_equal
    assert s.max_abs_diff == 0.0 and s.margin == 0.0
    assert s.note == "non-finite values: actual 1 NaN, 2 inf; expected 1 NaN, 2 inf"
    # a NaN against a number is still a mismatch
    t = compare_arrays(np.array([np.nan]), np.array([0.0]), atol=1, rtol=1, equal_nan=True)
    assert not t.passed and t.note == "non-finite values: actual 1 NaN; expected none"


def test_rule_allowed_and_margin():
    a, b = np.array([1.0, 2.25, -3.0]), np.array([1.0, 2.0, -2.5])
    s = compare_arrays(a, b, atol=0.5, rtol=0.0)
    assert (s.rule, s.allowed, s.margin, s.passed) == ("atol/rtol", 0.5, 1.0, True)
    t = compare_arrays(a, b, atol=0.0, rtol=0.1)  # allowed 0.1, 0.2, 0.25
    assert t.rule == "atol/rtol" and t.allowed == 0.25
    assert t.margin == 2.0 and not t.passed  # 0.5 / 0.25
    bound = compare_arrays(a, b, atol=0, rtol=0, allowed=np.array([0.0, 0.5, 1.0]))
    assert (bound.rule, bound.allowed, bound.margin, bound.passed) == ("bound", 1.0, 0.5, True)
    tight = compare_arrays(a, b, atol=0, rtol=0, allowed=np.array([0.0, 0.125, 1.0]))
    assert tight.margin == 2.0 and tight.mismatched == 1 and tight.worst_index == (1,)
    exact = compare_arrays(a, a.copy(), atol=0, rtol=0, exact=True)
    assert (exact.rule, exact.allowed, exact.margin) == ("exact", 0.0, 0.0)
    d = s.to_dict()
    assert (d["rule"], d["allowed"], d["margin"]) == ("atol/rtol", 0.5, 1.0)


def test_nan_against_a_number_is_an_infinite_mismatch():
    s = compare_arrays(np.array([1.0, np.nan]), np.array([1.0, 2.0]), atol=1.0, rtol=1.0)
    assert not s.passed
    assert s.mismatched == 1
    assert s.worst_index == (1,)
    assert s.max_abs_diff == math.inf
    assert s.max_ulp is None
    assert s.min_atol == math.inf


def test_opposite_infinities_mismatch():
    s = compare_arrays(np.array([np.inf]), np.array([-np.inf]), atol=1.0, rtol=1.0)
    assert not s.passed and s.max_abs_diff == math.inf


def test_negative_values_and_signed_zero():
    s = compare_arrays(np.array([-0.0, -1.0]), np.array([0.0, -1.0]), atol=0.0, rtol=0.0)
    assert s.passed  # -0 == +0 numerically
    assert s.max_ulp == 0
    assert not s.bitwise_equal  # but the bits differ
    exact = compare_arrays(
        np.array([-0.0, -1.0]), np.array([0.0, -1.0]), atol=0, rtol=0, exact=True
    )
    assert not exact.passed
    assert exact.mismatched == 1 and exact.worst_index == (0,)


def test_one_ulp_apart_float32():
    one = np.float32(1.0)
    nxt = np.nextafter(one, np.float32(2.0))
    s = compare_arrays(np.array([one, nxt]), np.array([one, one]), atol=0.0, rtol=1e-6)
    assert s.passed
    assert s.max_ulp == 1
    assert s.max_abs_diff == pytest.approx(2.0**-23)
    assert not s.bitwise_equal
    strict = compare_arrays(np.array([one, nxt]), np.array([one, one]), atol=1, rtol=1, exact=True)
    assert not strict.passed and strict.mismatched == 1


def test_ulp_distance_across_zero_and_signs():
    tiny = np.nextafter(np.float32(0), np.float32(1))
    a = np.array([tiny, -tiny, np.float32(-1.0)], np.float32)
    b = np.array([-tiny, tiny, np.float32(1.0)], np.float32)
    d = ulp_distance(a, b)
    assert d[0] == 2 and d[1] == 2
    assert d[2] == 2 * 0x3F800000  # the bit pattern of 1.0, twice
    with pytest.raises(TypeError):
        ulp_distance(a, b.astype(np.float64))


def test_mixed_precision_measures_ulps_in_the_lower_precision():
    ref = np.array([1.0 / 3.0])  # float64
    a = np.array([1.0 / 3.0], np.float32)
    s = compare_arrays(a, ref, atol=1e-7, rtol=0.0)
    assert s.passed
    assert s.max_ulp == 0  # correctly rounded
    assert not s.bitwise_equal  # different dtypes are never bitwise equal
    assert s.dtype_a == "float32" and s.dtype_b == "float64"


def test_shape_mismatch_fails_with_a_note():
    s = compare_arrays(np.zeros((1, 3, 2)), np.zeros((1, 3, 3)), atol=1.0, rtol=1.0)
    assert not s.passed
    assert s.note == "shapes differ: (1, 3, 2) vs (1, 3, 3)"
    assert s.max_abs_diff is None


def test_multidimensional_worst_index():
    b = np.zeros((2, 3, 4))
    a = b.copy()
    a[1, 2, 3] = 5.0
    a[0, 0, 0] = 1.0
    s = compare_arrays(a, b, atol=0.1, rtol=0.0)
    assert s.worst_index == (1, 2, 3)
    assert s.mismatched == 2
    assert s.mismatch_percent == pytest.approx(100 * 2 / 24)


def test_empty_arrays_pass():
    s = compare_arrays(np.zeros((0, 3)), np.zeros((0, 3)), atol=0, rtol=0)
    assert s.passed and s.total == 0


def test_non_numeric_arrays_are_refused():
    with pytest.raises(TypeError):
        compare_arrays(np.array(["a"]), np.array(["a"]), atol=0, rtol=0)


def test_bfloat16_when_available():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([1.0, 2.0], dtype=ml_dtypes.bfloat16)
    b = np.array([1.0, 2.015625], dtype=ml_dtypes.bfloat16)  # one bfloat16 ULP above 2
    s = compare_arrays(a, b, atol=0, rtol=0)
    assert s.max_ulp == 1 and not s.passed


def test_stats_module_never_imports_tensorflow():
    import subprocess
    import sys

    code = "import sys, tdcheck.core.stats, tdcheck.core.result; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_where_restricts_every_statistic():
    a = np.array([[1.0, 2.0, 9.0], [4.0, 5.0, 9.0]])
    b = np.array([[1.0, 2.5, 0.0], [4.0, 5.0, 0.0]])
    valid = np.array([[True, True, False], [True, True, False]])
    s = compare_arrays(a, b, atol=0.1, rtol=0.0, where=valid)
    assert (s.total, s.mismatched) == (4, 1)
    assert s.max_abs_diff == 0.5
    assert s.mean_abs_diff == pytest.approx(0.5 / 4)
    assert s.worst_index == (0, 1)  # full-array coordinates
    assert s.max_rel_diff == pytest.approx(0.2)
    assert s.min_atol == 0.5
    everything = compare_arrays(a, b, atol=0.1, rtol=0.0)
    assert (everything.total, everything.mismatched, everything.max_abs_diff) == (6, 3, 9.0)


def test_where_broadcasts_over_the_last_axis():
    a = np.zeros((2, 3, 2))
    b = np.zeros((2, 3, 2))
    b[1, 2] = np.nan  # only in a padded position
    valid = np.array([[True, True, True], [True, True, False]])[..., None]
    s = compare_arrays(a, b, atol=0.0, rtol=0.0, where=valid)
    assert s.passed and s.total == 10 and s.bitwise_equal and s.max_ulp == 0
