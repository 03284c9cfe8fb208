"""Hostile grids: spellings of one value, empty shards, deep -k, and lazy planning.

A sweep plans without building the grid: ``--list --shard 1/1000`` of a 10**6-case grid builds
the 1000 configurations of its shard, counted by :data:`tdcheck.core.grid.CONFIGS_BUILT`.
"""

from __future__ import annotations

import random

import pytest

from tdcheck.cli import cli
from tdcheck.commands.sweep import plan_sweep
from tdcheck.core import grid
from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def one_line_error(result, needle):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("tdcheck: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("option", "spellings", "normal"),
    [
        ("--initializer", "constant:0.1,constant:0.10", "constant:0.1"),
        ("--initializer", "he_normal,HE-NORMAL", "he_normal"),
        ("--bias-initializer", "zeros,ZEROS", "zeros"),
        ("--bias-initializer", "random_normal:0.5,random_normal:5e-1", "random_normal:0.5"),
        ("--lengths", "3:2,3:2", "3:2"),
        ("--seed", "1,01", "1"),
        ("--backend", "tensorflow, tensorflow", "tensorflow"),
    ],
)
def test_two_spellings_of_one_value_are_refused_naming_both(runner, option, spellings, normal):
    result = run(runner, "sweep", option, spellings, "--batch", "2", "--list")
    one_line_error(result, option)
    assert "twice" in result.stderr or f"({normal})" in result.stderr


def test_normalised_values_name_the_cases(runner):
    result = run(runner, "sweep", "--initializer", "CONSTANT:0.10,Zeros", "--list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-init=constant:0.1",
        "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-init=zeros",
    ]


@pytest.mark.parametrize("spec", ["", " ", "1", "0/2", "1/0", "a/b"])
def test_an_empty_or_malformed_shard_is_refused(runner, spec):
    one_line_error(run(runner, "sweep", "--shard", spec, "--list"), "--shard")


def test_deep_k_expressions_are_refused_not_a_recursion_error(runner):
    for depth in (65, 300, 5000):
        expr = "(" * depth + "lstm" + ")" * depth
        one_line_error(run(runner, "sweep", "-k", expr, "--list"), "-k: the expression nests")
        nots = "not " * depth + "lstm"
        one_line_error(run(runner, "sweep", "-k", nots, "--list"), "-k: the expression nests")
    ok = run(runner, "sweep", "-k", "(" * 32 + "not not lstm" + ")" * 32, "--list")
    assert ok.exit_code == 0 and ok.stdout.count("\n") == 1, ok.output


def _comma(n, start=1):
    return ",".join(str(i) for i in range(start, start + n))


def test_a_shard_of_a_million_case_grid_builds_only_its_own_cases(runner):
    before = grid.CONFIGS_BUILT
    args = ["sweep", "--hidden", _comma(100), "--seq", _comma(100), "--seed", _comma(100, 0),
            "--max-cases", "1000000", "--list", "--shard", "1/1000"]  # fmt: skip
    result = run(runner, *args)
    assert result.exit_code == 0, result.output
    names = result.stdout.splitlines()
    assert len(names) == 1000
    assert grid.CONFIGS_BUILT - before == 1000
    assert names[0] == "lstm1-f4-u2-s1-b1-float32-dense+time-distributed-seed=0"
    assert names[1] == "lstm1-f4-u2-s11-b1-float32-dense+time-distributed-seed=0"  # index 1000


def test_k_selects_by_name_without_building_configs():
    before = grid.CONFIGS_BUILT
    lists = {"hidden": _comma(100), "seq": _comma(100), "seed": _comma(10, 0)}
    plan = plan_sweep(lists, CompareConfig(), select="s7 and seed=3", shard=(2, 5),
                      max_cases=100_000)  # fmt: skip
    # s7 and s70..s79 at seed 3: 11 seq values x 100 hidden = 1100 cases, 220 in shard 2
    assert len(plan.selected) == 1100
    assert len(plan.cases) == 220
    assert grid.CONFIGS_BUILT - before == 220
    assert all("seed=3" in c.name and "-s7" in c.name for c in plan.cases)


def test_lazy_names_match_built_configs():
    """GridSpace.name(i) is case_name of the built case i, over random grids (seeded)."""
    rng = random.Random(17)
    choices = {
        "rnn": ["lstm", "gru", "simple-rnn", "none"], "hidden": ["3", "5", "7"],
        "dtype": ["float32", "float64", "float16"], "activation": ["linear", "relu", "gelu"],
        "initializer": ["constant:0.1", "zeros", "he_normal"], "seed": ["0", "2", "9"],
        "bias_initializer": ["zeros", "ones"], "weights": ["shared", "independent"],
        "time_dim": ["static", "dynamic"], "units": ["2", "4"], "features": ["4", "6"],
        "seq": ["3", "4"], "batch": ["1"], "lengths": ["3", "2"],
    }  # fmt: skip
    for _ in range(30):
        lists = {}
        for axis, values in choices.items():
            if rng.random() < 0.4:
                lists[axis] = ",".join(rng.sample(values, rng.randint(1, len(values))))
        if "lengths" in lists:
            lists["seq"], lists["batch"] = "3,4", "1"
        base = CompareConfig()
        axes = grid.axis_values(lists, base)
        space = grid.GridSpace(axes, base, max_cases=5000)
        for i, cfg in enumerate(grid.expand_axes(axes, base)):
            assert space.name(i) == grid.case_name(cfg.resolve_sizes(None), space.varying)


def test_a_bad_combination_is_refused_by_the_shard_that_holds_it():
    lists = {"initializer": "constant:1e5,zeros", "dtype": "float32,float16"}
    # case 2 is constant:1e5 with float16: shard 1 of 2 holds cases 0 and 2
    with pytest.raises(ConfigError, match=r"case .*float16.*init=constant:100000.*overflows"):
        plan_sweep(lists, CompareConfig(), shard=(1, 2))
    assert len(plan_sweep(lists, CompareConfig(), shard=(2, 2)).cases) == 2
