"""core/faults.py by hand, and --power in real runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tdcheck
from tdcheck.core import faults


def test_round_to_bfloat16_ties_to_even_by_hand():
    x = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-9, 1.0 + 2.0**-7, -3.0])
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1; 1 + 3*2^-8 -> 1 + 2^-6
    assert faults.round_to(x, "bfloat16").tolist() == [1.0, 1.0 + 2.0**-6, 1.0, 1.0 + 2.0**-7, -3.0]
    assert faults.round_to(np.array([0.1]), "float16")[0] == float(np.float16(0.1))


@pytest.mark.parametrize(
    ("dtype", "value", "spacing"),
    [("float32", 1.0, 2.0**-23), ("float32", 3.0, 2.0**-22), ("float16", 1000.0, 0.5),
     ("bfloat16", 1.0, 2.0**-7), ("float64", 0.5, 2.0**-53), ("float32", 0.0, 2.0**-149)],
)  # fmt: skip
def test_ulp_by_hand(dtype, value, spacing):
    assert faults.ulp(np.array(value), dtype) == spacing


def test_the_listed_faults_by_hand():
    k = np.array([[1.0, 2.0], [3.0, -4.0]], np.float32)
    b = np.array([0.5, -1.0], np.float32)
    listed = {f.name: f for f in faults.faults(k, b, "linear", "float32")}
    assert list(listed) == [
        "1-ULP kernel element", "kernel x (1+1u)", "kernel x (1+16u)", "kernel x (1+256u)",
        "kernel x 1.01", "bias dropped", "bias + 1 ULP of its largest", "kernel transposed",
        "output units 0 and 1 swapped", "activation tanh instead of linear",
    ]  # fmt: skip
    one = listed["1-ULP kernel element"]
    assert one.kernel[1, 1] == -4.0 - 2.0**-21 and (one.kernel != k).sum() == 1
    assert one.note == "kernel[1, 1] moved one ULP away from zero"
    assert listed["kernel x (1+256u)"].kernel[0, 0] == 1.0 + 2.0**-16
    assert listed["bias dropped"].bias.tolist() == [0.0, 0.0]
    assert listed["bias + 1 ULP of its largest"].bias.tolist() == [0.5 + 2.0**-23, -1.0 + 2.0**-23]
    assert listed["kernel transposed"].kernel.tolist() == [[1.0, 3.0], [2.0, -4.0]]
    swapped = listed["output units 0 and 1 swapped"]
    assert swapped.kernel.tolist() == [[2.0, 1.0], [-4.0, 3.0]]
    assert swapped.bias.tolist() == [-1.0, 0.5]
    assert listed["activation tanh instead of linear"].activation == "tanh"
    assert listed["kernel x 1.01"].kernel[1, 1] == float(np.float32(-4.04))
    assert [f.rounding_level for f in listed.values()] == (
        [True] * 4 + [False, False, True] + [False] * 3
    )


def test_blind_reasons_name_the_symmetry_and_the_options():
    why, options = faults.blind_reasons(
        np.full((5, 2), 0.1), np.zeros(2), np.ones((1, 3, 4)), ["bias dropped"]
    )
    assert why == "every kernel element is the same; the bias is zero; the input is constant"
    assert options == [
        "--initializer glorot_uniform", "--bias-initializer random_normal:0.5", "--input random"
    ]  # fmt: skip


def test_the_default_run_says_what_it_is_blind_to_and_still_reproduces_the_seed():
    r = tdcheck.compare(power=True)
    assert r.passed and r.total_params == 224 and r.arrays["outputs/dense"].shape == (1, 3, 2)
    rows = {row["fault"]: row["detected"] for row in r.power["faults"]}
    assert rows["bias dropped"] is False and rows["output units 0 and 1 swapped"] is False
    assert rows["activation tanh instead of linear"] is True
    assert r.power["blind"] == (
        "blind to bias dropped, output units 0 and 1 swapped: every kernel element is the same; "
        "the bias is zero; the input is constant; sensitive with --initializer glorot_uniform "
        "--bias-initializer random_normal:0.5 --input random"
    )
    assert json.loads(r.to_json())["power"]["head"] == "time-distributed"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_input_and_bias_detect_every_structural_fault(dtype):
    r = tdcheck.compare(
        power=True, dtype=dtype, input="random", initializer="glorot_uniform",
        bias_initializer="random_normal:0.5", hidden=5, units=5, seq=4, batch=2,
    )  # fmt: skip
    assert r.passed  # the user's heads are untouched
    structural = [row for row in r.power["faults"] if not row["rounding_level"]]
    assert [row["fault"] for row in structural] == [
        "kernel x 1.01", "bias dropped", "kernel transposed", "output units 0 and 1 swapped",
        "activation tanh instead of linear",
    ]  # fmt: skip
    assert all(row["detected"] and row["margin"] > 1 for row in structural)
    assert r.power["blind"] is None or "within the rounding" in r.power["blind"]
    assert r.power["smallest_scaling_detected"] <= 256
    assert any(row["fault"] == "kernel x (1+256u)" and row["detected"] for row in r.power["faults"])


def test_a_larger_scaling_than_the_smallest_detected_is_detected():
    r = tdcheck.compare(power=True, input="random", initializer="glorot_uniform", units=3)
    by_rule = r.power["smallest_scaling_by_rule"]
    assert set(by_rule) == {"bound", "statistical", "float64"}
    assert by_rule["float64"] == 1  # any change of a stored weight is another computation
    assert by_rule["statistical"] <= by_rule["bound"]  # 9 elements: no averaging gain
    assert r.power["smallest_scaling_detected"] == by_rule["statistical"]
    rows = {row["fault"]: row["by_rule"] for row in r.power["faults"]}
    for step in (1, 16, 256):
        for rule, k in by_rule.items():
            assert rows[f"kernel x (1+{step}u)"][rule]["detected"] == (step >= k), (rule, step)


def test_power_in_every_format(runner):
    from tdcheck.cli import cli

    env = {"COLUMNS": "200"}
    doc = json.loads(runner.invoke(cli, ["compare", "--power", "--format", "json"], env=env).stdout)
    assert doc["passed"] is True and len(doc["power"]["faults"]) == 9
    table = runner.invoke(cli, ["compare", "--power"], env=env)
    assert table.exit_code == 0
    assert "power: 7 of 9 faults injected into a copy of the time-distributed head detected" in (
        table.stdout
    )
    assert "  bias dropped: not detected\n" in table.stdout
    markdown = runner.invoke(cli, ["compare", "--power", "--format", "markdown"], env=env).stdout
    assert "  activation tanh instead of linear: detected by bound (margin 783), statistical" in (
        markdown
    )
    assert "  1-ULP kernel element: detected by float64 (margin 1.29e+15); not by bound, " in (
        markdown
    )
    assert "  by rule: bound 1 + 16u, statistical 1 + 32u, float64 1 + 1u\n" in markdown
    assert "power:" not in runner.invoke(cli, ["compare"], env=env).stdout
    plain = json.loads(runner.invoke(cli, ["compare", "--format", "json"], env=env).stdout)
    assert plain["power"] is None


def test_sweep_reports_power_per_case(runner):
    from tdcheck.cli import cli

    result = runner.invoke(cli, ["sweep", "--hidden", "3,5", "--power", "--format", "json"])
    assert result.exit_code == 0
    cases = json.loads(result.stdout)["cases"]
    assert [len(c["power"]["faults"]) for c in cases] == [9, 9]
    assert all(c["power"]["blind"].startswith("blind to bias dropped") for c in cases)
    plain = runner.invoke(cli, ["sweep", "--hidden", "3", "--format", "json"])
    assert json.loads(plain.stdout)["cases"][0]["power"] is None
