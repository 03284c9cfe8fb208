"""tdcheck sweep and merge: grids, shards, JUnit, fail-fast, errors, interrupts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tdcheck.cli import cli
from tdcheck.core.config import CompareConfig
from tdcheck.core.grid import case_name, expand, parse_list, parse_shard, shard
from tdcheck.errors import ConfigError


def run(runner, *args, env=None):
    return runner.invoke(cli, list(args), catch_exceptions=False,
                         env={"COLUMNS": "200", **(env or {})})  # fmt: skip


# -- grid expansion ---------------------------------------------------------------------


def test_expansion_is_the_ordered_cartesian_product():
    cases = expand({"rnn": "lstm,gru", "hidden": "4,8", "seq": "3"}, CompareConfig())
    assert [(c.rnn, c.hidden, c.seq) for c in cases] == [
        ("lstm", 4, 3), ("lstm", 8, 3), ("gru", 4, 3), ("gru", 8, 3),
    ]  # fmt: skip
    assert all(c.units == 2 and c.variants == ("dense", "time-distributed") for c in cases)


def test_variant_sets_and_dtypes_expand():
    cases = expand(
        {"variants": ["dense,time-distributed", "dense,conv1d"], "dtype": "float32,float64"},
        CompareConfig(),
    )
    assert [(c.dtype, c.variants) for c in cases] == [
        ("float32", ("dense", "time-distributed")), ("float32", ("dense", "conv1d")),
        ("float64", ("dense", "time-distributed")), ("float64", ("dense", "conv1d")),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ({"hidden": "4,x"}, "--hidden: '4,x' is not a comma list of whole numbers"),
        ({"hidden": "4,4"}, "--hidden: a value is listed twice in '4,4'"),
        ({"hidden": "4,0"}, "--hidden: must be > 0 (got 0)"),
        ({"rnn": "lstm,cnn"}, "--rnn: unknown value 'cnn'"),
        ({"dtype": "float8"}, "--dtype: unknown value 'float8'"),
        (
            {"variants": ["dense,time-distributed", "dense,time-distributed"]},
            "--variants: a variant set is given twice",
        ),
        ({"seq": ","}, "--seq: give at least one value"),
    ],
)
def test_expansion_errors(lists, message):
    with pytest.raises(ConfigError) as info:
        expand(lists, CompareConfig())
    assert info.value.message.startswith(message)


def test_max_cases_refuses_huge_grids_before_running():
    with pytest.raises(ConfigError) as info:
        expand({"hidden": ",".join(map(str, range(1, 101))), "seq": ",".join(map(str, range(1, 61)))},
               CompareConfig())  # fmt: skip
    assert info.value.message == (
        "the grid has 6000 cases (100 x 60), over --max-cases 5000; shrink it or raise --max-cases"
    )


def test_parse_list():
    assert parse_list("hidden", "4, 8,16") == [4, 8, 16]
    assert parse_list("rnn", "lstm,gru") == ["lstm", "gru"]
    assert parse_list("hidden", None) == [None]


def test_case_names_are_built_from_the_configuration():
    cfg = CompareConfig(rnn="gru", hidden=8, seq=10, batch=4, dtype="float16",
                        variants=("dense", "conv1d")).validated().resolve_sizes(None)  # fmt: skip
    assert case_name(cfg) == "gru8-f4-u2-s10-b4-float16-dense+conv1d"
    none = CompareConfig(rnn="none").validated().resolve_sizes(None)
    assert case_name(none) == "none-f4-u2-s3-b1-float32-dense+time-distributed"


# -- shards -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "parsed"), [("1/4", (1, 4)), (" 4 / 4 ", (4, 4)), ("1/1", (1, 1))]
)
def test_parse_shard(spec, parsed):
    assert parse_shard(spec) == parsed


@pytest.mark.parametrize("spec", ["0/4", "5/4", "1/0", "a/b", "2", "1/2/3"])
def test_parse_shard_errors(spec):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(spec)


@given(st.integers(0, 200), st.integers(1, 17))
def test_shards_are_disjoint_complete_and_balanced(total, n):
    items = list(range(total))
    parts = [shard(items, k, n) for k in range(1, n + 1)]
    flat = sorted(i for part in parts for i in part)
    assert flat == items  # complete and disjoint
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # balanced
    assert parts == [shard(items, k, n) for k in range(1, n + 1)]  # deterministic


# -- the command ------------------------------------------------------------------------


def test_sweep_table_and_exit_0(runner):
    result = run(runner, "sweep", "--hidden", "3,5", "--seq", "2,4")
    assert result.exit_code == 0
    out = result.stdout
    assert "lstm3-f4-u2-s2-b1-float32-dense+time-distributed" in out
    assert out.rstrip().splitlines()[-1] == "PASSED: 4 passed, 0 failed, 0 errored of 4 cases"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_sweep_json_document(runner):
    result = run(runner, "sweep", "--rnn", "lstm,none", "--batch", "1,2", "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["passed"] is True
    assert doc["summary"] == {"total": 4, "passed": 4, "failed": 0, "errored": 0, "not_run": 0}
    assert [c["index"] for c in doc["cases"]] == [0, 1, 2, 3]
    assert doc["not_run"] == [] and doc["plan"]["indices"] == [0, 1, 2, 3]
    assert all(c["reproduce"] is None for c in doc["cases"])  # only failing cases carry one
    case = doc["cases"][0]
    assert case["config"]["rnn"] == "lstm" and case["config"]["batch"] == 1
    assert case["passed"] is True and case["status"] == "passed"
    assert {c["b"] for c in case["comparisons"]} == {"dense", "oracle"}
    assert doc["environment"]["tensorflow"]


def test_sweep_failures_exit_1_and_are_listed(runner, tmp_path, junit_counts):
    junit = tmp_path / "report.xml"
    result = run(runner, "sweep", "--hidden", "3,5", "--weights", "independent",
                 "--initializer", "he_normal", "--junit", str(junit))  # fmt: skip
    assert result.exit_code == 1
    name3 = "lstm3-f4-u2-s3-b1-float32-dense+time-distributed-init=he_normal-weights=independent"
    name5 = name3.replace("lstm3", "lstm5")
    assert f"{name3}: NOT EQUIVALENT: 1 of 4" in result.stdout
    again = "tdcheck compare {}--initializer he_normal --weights independent --input ones --seed 0"
    lines = result.stdout.splitlines()
    assert lines[-4:] == [  # --hidden 5 is compare's default
        "Reproduce:", "  " + again.format("--hidden 3 "), "  " + again.format(""),
        "FAILED: 0 passed, 2 failed, 0 errored of 2 cases",
    ]  # fmt: skip
    assert junit_counts(junit) == (2, 2, 0)
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [name3, name5]
    assert {c.get("classname") for c in cases} == {"tdcheck.sweep"}
    failure = cases[0].find("failure")
    assert failure.get("type") == "NotEquivalent"
    assert failure.get("message").startswith("NOT EQUIVALENT: 1 of 4 comparisons failed")
    assert "FAIL output time-distributed vs dense: max_abs_diff=" in failure.text
    assert "mismatched=6/6" in failure.text
    assert failure.text.endswith("\nReproduce: " + again.format("--hidden 3 "))


def test_markdown_report_has_the_reproduce_section(runner):
    result = run(runner, "sweep", "--seed", "0,1", "--weights", "independent",
                 "--initializer", "he_normal", "--format", "markdown")  # fmt: skip
    assert result.exit_code == 1
    tail = result.stdout.split("### Reproduce\n\n")[1]
    assert tail == (
        "- `tdcheck compare --initializer he_normal --weights independent --input ones --seed 0`\n"
        "- `tdcheck compare --initializer he_normal --weights independent --input ones --seed 1`\n"
    )


def test_a_value_compare_rejects_is_rejected_up_front(runner, tmp_path):
    junit = tmp_path / "r.xml"
    # --lengths 3 fits batch 1 but not batch 2: compare refuses that before TensorFlow loads,
    # so sweep refuses the grid (exit 2), writing nothing.
    result = run(runner, "sweep", "--batch", "1,2", "--lengths", "3", "--junit", str(junit))
    assert result.exit_code == 2
    assert result.stderr == (
        "tdcheck: error: case lstm5-f4-u2-s3-b2-float32-dense+time-distributed-len=3: "
        "--lengths: 1 length(s) for a batch of 2; give one per batch row\n"
    )
    assert result.stdout == "" and not junit.exists()


def test_errored_case_is_recorded_and_the_sweep_goes_on(runner, tmp_path, monkeypatch):
    import tdcheck.commands.session

    real_run = tdcheck.commands.session.Session.run

    def fail_on_seq_3(self, cfg, x):
        if cfg.seq == 3:
            raise ValueError("{{function_node f}} boom at seq 3")
        return real_run(self, cfg, x)

    monkeypatch.setattr(tdcheck.commands.session.Session, "run", fail_on_seq_3)
    junit = tmp_path / "r.xml"
    result = run(runner, "sweep", "--seq", "2,3", "--format", "json", "--junit", str(junit))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["summary"] == {"total": 2, "passed": 1, "failed": 0, "errored": 1, "not_run": 0}
    errored = doc["cases"][1]
    assert errored["status"] == "errored"
    assert errored["error"] == "ValueError: boom at seq 3"
    assert errored["reproduce"] == "tdcheck compare --seq 3 --input ones --seed 0"
    error = ET.parse(junit).getroot().find("./testsuite/testcase[2]/error")
    assert error.get("message") == errored["error"]
    assert error.text == (
        "ValueError: boom at seq 3\nReproduce: tdcheck compare --seq 3 --input ones --seed 0"
    )


def test_fail_fast_stops_at_the_first_failure(runner, tmp_path, junit_counts):
    junit = tmp_path / "ff.xml"
    result = run(runner, "sweep", "--hidden", "3,4,5", "--weights", "independent",
                 "--initializer", "he_normal", "--fail-fast", "--format", "json",
                 "--junit", str(junit))  # fmt: skip
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["summary"] == {"total": 1, "passed": 0, "failed": 1, "errored": 0, "not_run": 2}
    assert doc["stopped_early"] is True and doc["grid_size"] == 3
    reason = "not run: the sweep stopped at the first failure (--fail-fast)"
    assert doc["not_run"] == [
        {"index": 1, "name": "lstm4-f4-u2-s3-b1-float32-dense+time-distributed-init=he_normal-"
                             "weights=independent", "shard": 1, "reason": reason},
        {"index": 2, "name": "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-init=he_normal-"
                             "weights=independent", "shard": 1, "reason": reason},
    ]  # fmt: skip
    assert junit_counts(junit) == (3, 1, 2)
    errors = ET.parse(junit).getroot().findall("./testsuite/testcase/error")
    assert [(e.get("type"), e.get("message")) for e in errors] == [("NotRun", reason)] * 2


def test_usage_errors_exit_2(runner):
    cases = {
        (
            "--max-cases",
            "3",
            "--hidden",
            "1,2,3,4",
        ): "tdcheck: error: the grid has 4 cases (4), over --max-cases 3; shrink it or raise --max-cases\n",
        ("--shard", "3/2"): "tdcheck: error: --shard: '3/2' needs 1 <= K <= N\n",
        (
            "--hidden",
            "4,x",
        ): "tdcheck: error: --hidden: '4,x' is not a comma list of whole numbers\n",
        (
            "--junit",
            "no/such/dir/r.xml",
        ): "tdcheck: error: --junit: the folder 'no/such/dir' does not exist\n",
        ("--max-cases", "0"): "tdcheck: error: --max-cases: must be 1..1000000 (got 0)\n",
    }
    for args, message in cases.items():
        result = run(runner, "sweep", *args)
        assert result.exit_code == 2, args
        assert result.stderr == message


def test_shards_then_merge(runner, tmp_path):
    grid = ["--hidden", "3,4,5", "--seq", "2,3"]
    paths = []
    for k in (1, 2, 3, 4):
        path = tmp_path / f"shard{k}.json"
        result = run(runner, "sweep", *grid, "--shard", f"{k}/4", "--output", str(path), "--quiet")
        assert result.exit_code == 0
        assert result.stdout.startswith(f"PASSED: {2 if k <= 2 else 1} passed")
        assert f"(shard {k}/4 of a 6-case grid)" in result.stdout
        paths.append(str(path))
    junit = tmp_path / "all.xml"
    merged = run(runner, "merge", *paths, "--format", "json", "--junit", str(junit))
    assert merged.exit_code == 0
    doc = json.loads(merged.stdout)
    assert doc["summary"] == {"total": 6, "passed": 6, "failed": 0, "errored": 0, "not_run": 0}
    assert [c["index"] for c in doc["cases"]] == [0, 1, 2, 3, 4, 5]
    assert doc["complete"] is True and doc["merged_from"] == 4
    assert len(ET.parse(junit).getroot().findall("./testsuite/testcase")) == 6
    # a missing shard is not a green run
    partial = run(runner, "merge", *paths[:3], "--quiet")
    assert partial.exit_code == 1
    assert partial.stdout == (
        "FAILED: 5 passed, 0 failed, 0 errored of 5 cases (merged from 3 reports); "
        "incomplete: 5 of 6 planned cases present\n"
    )
    assert partial.stderr == (
        "tdcheck: merge: shard 4/4 is missing (1 case: lstm4-f4-u2-s3-b1-float32-dense+time-distributed)\n"
    )
    # the same shard twice is an error
    twice = run(runner, "merge", paths[0], paths[0])
    assert twice.exit_code == 2
    assert twice.stderr == (
        f"tdcheck: error: merge: shard 1/4 is given twice ({paths[0]!r} and {paths[0]!r})\n"
    )


def test_merge_refuses_other_files(runner, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"passed": true}')
    result = run(runner, "merge", str(bad))
    assert result.exit_code == 2
    assert (
        result.stderr == f"tdcheck: error: merge: {str(bad)!r} is not a tdcheck sweep JSON report\n"
    )
    missing = run(runner, "merge", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_github_step_summary_is_appended(runner, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    result = run(runner, "sweep", "--seq", "2,3", "--quiet",
                 env={"GITHUB_STEP_SUMMARY": str(summary)})  # fmt: skip
    assert result.exit_code == 0
    text = summary.read_text()
    assert text.startswith("before\n## tdcheck sweep\n")
    assert "| 2 | 2 | 0 | 0 |" in text


def test_interrupt_writes_the_partial_report_and_exits_130(
    runner, tmp_path, monkeypatch, junit_counts
):
    import tdcheck.commands.session

    calls = {"n": 0}
    real_run = tdcheck.commands.session.Session.run

    def run_then_interrupt(self, cfg, x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_run(self, cfg, x)

    monkeypatch.setattr(tdcheck.commands.session.Session, "run", run_then_interrupt)
    out = tmp_path / "partial.json"
    junit = tmp_path / "partial.xml"
    result = run(runner, "sweep", "--seq", "2,3,4", "--output", str(out), "--quiet",
                 "--junit", str(junit))  # fmt: skip
    assert result.exit_code == 130
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["passed"] is False
    assert doc["summary"]["total"] == 1
    assert result.stdout.endswith("; interrupted, partial report; 2 not run\n")
    assert [e["name"] for e in doc["not_run"]] == [
        "lstm5-f4-u2-s3-b1-float32-dense+time-distributed",
        "lstm5-f4-u2-s4-b1-float32-dense+time-distributed",
    ]
    assert {e["reason"] for e in doc["not_run"]} == {"not run: the sweep was interrupted"}
    assert junit_counts(junit) == (3, 0, 2)  # red for a JUnit-only reader
    assert result.stderr == "tdcheck: interrupted; the report covers the cases that finished\n"


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io
    import sys

    from tdcheck.commands.sweep import CaseResult
    from tdcheck.reports.progress import progress_reporter

    class Tty(io.StringIO):
        def isatty(self):
            return True

    case = CaseResult(0, "c", {}, "failed", 0.1)
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    with progress_reporter(2) as on_case:
        on_case(case)
    assert piped.getvalue() == ""
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    with progress_reporter(2) as on_case:
        on_case(case)
        on_case(CaseResult(1, "d", {}, "passed", 0.1))
    assert "1 passed" in tty.getvalue() and "1 failed" in tty.getvalue()
    quiet = Tty()
    monkeypatch.setattr(sys, "stderr", quiet)
    with progress_reporter(2, enabled=False) as on_case:
        on_case(case)
    assert quiet.getvalue() == ""
