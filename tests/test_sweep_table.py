"""The sweep table: the variant pairs' worst comparison first (the oracle's in its own
column), case rows that fit 80 columns with short labels, and a merge titled as one."""

from __future__ import annotations

import io
import json

from rich.console import Console

from tdcheck.cli import cli
from tdcheck.reports import sweep_render

LONG = "lstm64-f4-u2-s{seq}-b4-float32-dense+time-distributed+conv1d+einsum-act=gelu-init={init}"


def comparison(a, b, max_abs, ulp, passed=True, bitwise=False):
    return {"kind": "output", "quantity": "output", "a": a, "b": b, "max_abs_diff": max_abs,
            "max_rel_diff": max_abs * 10, "max_ulp": ulp, "bitwise_equal": bitwise,
            "passed": passed, "margin": 0.25}  # fmt: skip


def case(index, seq, init, comps, status="passed"):
    config = {"hidden": 64, "seq": seq, "initializer": init, "activation": "gelu",
              "variants": ["dense", "time-distributed", "conv1d", "einsum"]}  # fmt: skip
    return {"index": index, "name": LONG.format(seq=seq, init=init), "status": status,
            "seconds": 1.25, "comparisons": comps, "config": config,
            "verdict": "EQUIVALENT" if status == "passed" else "NOT EQUIVALENT: conv1d",
            "error": None}  # fmt: skip


def doc(**extra):
    cases = [
        case(0, 3, "constant:0.1", [
            comparison("time-distributed", "dense", 1.86e-09, 1),
            comparison("conv1d", "dense", 0.0, 0, bitwise=True),
            comparison("trunk", "oracle", 4.32e-08, 3),  # the largest: not what users want
            comparison("dense", "oracle", 2.01e-09, 1),
        ]),
        case(1, 32, "he_normal", [
            comparison("time-distributed", "dense", 0.0, 0, bitwise=True),
            comparison("conv1d", "dense", 0.0123, 123456, passed=False),
            comparison("trunk", "oracle", 7.5e-08, 9, passed=False),
        ], status="failed"),
    ]  # fmt: skip
    return {"passed": False, "summary": {"total": 2, "passed": 1, "failed": 1, "errored": 0},
            "grid_size": 2, "shard": None, "interrupted": False, "stopped_early": False,
            "cases": cases, **extra}  # fmt: skip


def table(d, width, wide=False):
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None,
                      soft_wrap=False, legacy_windows=False)  # fmt: skip
    sweep_render._render_table(d, console, wide)
    return console.export_text()


def test_worst_variant_pair_comes_first_and_the_oracle_apart():
    first, second = doc()["cases"]
    assert sweep_render.case_row(first) == [
        first["name"], "PASSED", "time-distributed vs dense", "1.86e-09", "1", "1/2", "4.32e-08",
    ]  # fmt: skip
    assert sweep_render.case_row(second)[2:] == [
        "conv1d vs dense", "0.0123", "123456", "1/2", "7.5e-08 FAIL",
    ]  # fmt: skip
    oracle_only = case(2, 3, "zeros", [comparison("trunk", "oracle", 1e-08, 2)])
    assert sweep_render.case_row(oracle_only)[2:] == ["trunk vs oracle", "1e-08", "2", "-", "1e-08"]


def test_short_labels_name_the_options_that_differ():
    assert sweep_render.short_labels(doc()["cases"]) == {
        0: "#0 seq=3 init=constant:0.1", 1: "#1 seq=32 init=he_normal",
    }  # fmt: skip
    assert sweep_render.short_labels([{"index": 0, "name": "x"}]) == {}  # no config: none


def test_sweep_rows_fit_80_columns_on_one_line_each():
    text = table(doc(), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert LONG.format(seq=3, init="constant:0.1") not in text  # the ~90-character names
    label = lines.index(" #0 seq=3 init=constant:0.1  time-distributed vs dense")
    assert lines[label + 1].split() == ["PASSED", "1.86e-09", "1", "1/2", "4.32e-08"]
    label = lines.index(" #1 seq=32 init=he_normal  conv1d vs dense")
    assert lines[label + 1].split() == ["FAILED", "0.0123", "123456", "1/2", "7.5e-08", "FAIL"]
    assert "case: # and the options that differ (full names: --wide, JSON, JUnit)" in text
    # the failed case's full name is still printed, with its verdict, below the table (prose:
    # it wraps on a terminal)
    full = f"{LONG.format(seq=32, init='he_normal')}:NOTEQUIVALENT:conv1d"
    assert full in "".join(text.split())


def test_wide_and_piped_tables_keep_the_full_names():
    text = table(doc(), 400)
    row = next(line for line in text.splitlines() if "he_normal" in line)
    assert row.split() == [LONG.format(seq=32, init="he_normal"), "FAILED", "0.0123", "123456",
                           "1/2", "7.5e-08", "FAIL", "conv1d", "vs", "dense"]  # fmt: skip
    wide = table(doc(), 80, wide=True)  # --wide: every column, and the full names
    assert "#0 seq=3" not in wide
    assert LONG.format(seq=3, init="constant:0.1") in "".join(wide.split())


def test_merge_report_is_titled_merge():
    assert table(doc(merged_from=2), 80).splitlines()[0] == "tdcheck merge"
    assert table(doc(), 80).splitlines()[0] == "tdcheck sweep"
    assert sweep_render.render_markdown(doc(merged_from=2)).startswith("## tdcheck merge\n")


def test_merge_command_prints_merge(runner, tmp_path):
    from tests.test_ci import fake_report  # a sweep report written without running

    a = fake_report(tmp_path / "a.json", {"seed": "0,1"}, shard=(1, 2))
    b = fake_report(tmp_path / "b.json", {"seed": "0,1"}, shard=(2, 2))
    result = runner.invoke(cli, ["merge", a, b, "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("## tdcheck merge\n")
    doc_ = json.loads(runner.invoke(cli, ["merge", a, b, "--format", "json"]).stdout)
    assert doc_["merged_from"] == 2
