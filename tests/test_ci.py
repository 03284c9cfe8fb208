"""CI integrity: grid fingerprints, merge refusals, not-run cases in JUnit, reproduce
commands, every case-shaping option as a sweep axis, -k, --list, compare --junit, env."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.cli.compare import compare_command
from tdcheck.commands.sweep import CaseResult, SweepResult, plan_sweep
from tdcheck.core.config import CompareConfig
from tdcheck.core.grid import (
    compare_arguments,
    expand,
    fingerprint_differences,
    parse_list,
    parse_selection,
    reproduce_command,
)
from tdcheck.errors import ConfigError


def run(runner, *args, env=None):
    return runner.invoke(cli, list(args), catch_exceptions=False,
                         env={"COLUMNS": "200", **(env or {})})  # fmt: skip


def fake_report(path, lists, shard=None, base=None, status="passed", **plan_options):
    """A sweep report written without running anything (merge never runs cases)."""
    plan = plan_sweep(lists, base or CompareConfig(), shard=shard, **plan_options)
    result = SweepResult(
        cases=[CaseResult(c.index, c.name, {}, status, 0.5) for c in plan.cases],
        grid_size=plan.grid_size, shard=plan.shard, fingerprint=plan.fingerprint,
        plan=plan.plan_dict(),
    )  # fmt: skip
    path.write_text(result.to_json())
    return str(path)


def run_isolated(*args):
    """The CLI in a fresh interpreter: (exit code, stdout, stderr, TensorFlow imported?)."""
    code = (
        "import sys\nfrom tdcheck.cli import cli\n"
        f"rc = cli.main({list(args)!r}, standalone_mode=False)\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED', file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    stderr, _, flag = proc.stderr.rstrip("\n").rpartition("\n")
    if not _:
        stderr, flag = "", proc.stderr.strip()
    return proc.returncode, proc.stdout, stderr + ("\n" if stderr else ""), flag == "TF_LOADED"


# -- axes -----------------------------------------------------------------------------------


def test_every_case_shaping_option_is_an_axis():
    cases = expand(
        {"seed": "0,7", "activation": "linear,gelu", "initializer": "constant:0.1,he_normal",
         "bias_initializer": "zeros,ones", "weights": "shared,independent",
         "time_dim": "static,dynamic", "lengths": "3,2", "hidden": "3"},
        CompareConfig(),
    )  # fmt: skip
    assert len(cases) == 2**7
    first, last = cases[0], cases[-1]
    assert (first.seed, first.activation, first.initializer, first.bias_initializer,
            first.weights, first.time_dim, first.lengths) == (
        0, "linear", "constant:0.1", "zeros", "shared", "static", (3,))  # fmt: skip
    assert (last.seed, last.activation, last.initializer, last.bias_initializer,
            last.weights, last.time_dim, last.lengths) == (
        7, "gelu", "he_normal", "ones", "independent", "dynamic", (2,))  # fmt: skip
    # the seed varies fastest, then the lengths
    assert [(c.lengths, c.seed) for c in cases[:4]] == [((3,), 0), ((3,), 7), ((2,), 0), ((2,), 7)]


def test_lengths_lists_use_colons_inside_a_vector():
    assert parse_list("lengths", "3:2, 2:2,3") == [(3, 2), (2, 2), (3,)]
    with pytest.raises(ConfigError) as info:
        parse_list("lengths", "3:x")
    assert info.value.message == (
        "--lengths: '3:x' is not a comma list of length vectors (rows joined by ':', e.g. 3:2,2:2)"
    )
    with pytest.raises(ConfigError, match="--seed: '1,a' is not a comma list of whole numbers"):
        parse_list("seed", "1,a")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--activation", "linear,gelux"), "--activation: unknown value 'gelux'"),
        (("--initializer", "zeros,nope"), "--initializer: unknown initializer 'nope'"),
        (("--weights", "shared,half"), "--weights: unknown value 'half'"),
        (("--time-dim", "dynamic,later"), "--time-dim: unknown value 'later'"),
        (("--seed", "0,-1"), "--seed: must be a whole number "),
        (("--batch", "2", "--lengths", "3:2,4:1"),
         "case lstm5-f4-u2-s3-b2-float32-dense+time-distributed-len=4:1: --lengths: length 4 "
         "is out of range 1..3 (the --seq)"),
        (("--hidden", "4000", "--seq", "4000", "--max-memory", "1MB"),
         "case lstm4000-f4-u2-s4000-b1-float32-dense+time-distributed: this configuration needs"),
        (("-k", "gru"), "-k: 'gru' selects none of the 1 cases"),
    ],
)  # fmt: skip
def test_values_compare_rejects_are_rejected_before_tensorflow(args, message):
    code, out, err, tf_loaded = run_isolated("sweep", *args)
    assert code == 2 and out == ""
    assert err.startswith("tdcheck: error: " + message) and err.count("\n") == 1
    assert not tf_loaded


# -- names, -k and --list -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "selected"),
    [
        ("gru", ["gru3-s2", "gru3-s10"]),
        ("GRU and s10", ["gru3-s10"]),
        ("not gru", ["lstm3-s2", "lstm3-s10"]),
        ("s2 or s10 and gru", ["lstm3-s2", "gru3-s2", "gru3-s10"]),  # and binds tighter
        ("(s2 or s10) and gru", ["gru3-s2", "gru3-s10"]),
        ("not (lstm or s10)", ["gru3-s2"]),
        ("not not lstm", ["lstm3-s2", "lstm3-s10"]),
        ("3-s1", ["lstm3-s10", "gru3-s10"]),
    ],
)
def test_selection_expressions(expr, selected):
    names = ["lstm3-s2", "lstm3-s10", "gru3-s2", "gru3-s10"]
    match = parse_selection(expr)
    assert [n for n in names if match(n)] == selected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "-k: the expression is empty"),
        ("gru and", "-k: the expression ends too early in 'gru and'"),
        ("(gru", "-k: a '(' is not closed in '(gru'"),
        ("gru)", "-k: unexpected ')' in 'gru)'"),
        ("and gru", "-k: unexpected 'and' in 'and gru'"),
        ("gru lstm", "-k: unexpected 'lstm' in 'gru lstm'"),
        ("__import__('os')", "-k: unexpected '(' in \"__import__('os')\""),
    ],
)
def test_selection_errors(expr, message):
    with pytest.raises(ConfigError) as info:
        parse_selection(expr)
    assert info.value.message == message


def test_list_prints_the_selected_shard_without_tensorflow():
    args = ("sweep", "--rnn", "lstm,gru", "--seed", "0,1", "--seq", "2,3", "-k", "not seed=0")
    code, out, err, tf_loaded = run_isolated(*args, "--list")
    assert (code, err, tf_loaded) == (0, "", False)
    assert out.splitlines() == [
        "lstm5-f4-u2-s2-b1-float32-dense+time-distributed-seed=1",
        "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-seed=1",
        "gru5-f4-u2-s2-b1-float32-dense+time-distributed-seed=1",
        "gru5-f4-u2-s3-b1-float32-dense+time-distributed-seed=1",
    ]
    # shards split the selection, not the grid
    code, out, _, _ = run_isolated(*args, "--shard", "2/2", "--list")
    assert code == 0
    assert out.splitlines() == [
        "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-seed=1",
        "gru5-f4-u2-s3-b1-float32-dense+time-distributed-seed=1",
    ]


def test_list_as_json_gives_index_shard_and_command(runner):
    result = run(runner, "sweep", "--hidden", "3,4,5", "-k", "not lstm4", "--shard", "2/2",
                 "--list", "--format", "json")  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {"index": 2, "name": "lstm5-f4-u2-s3-b1-float32-dense+time-distributed", "shard": 2,
         "reproduce": "tdcheck compare --input ones --seed 0"},
    ]  # fmt: skip


def test_an_empty_shard_passes_without_loading_tensorflow():
    code, out, err, tf_loaded = run_isolated("sweep", "--seq", "2,3", "--shard", "3/3", "--quiet")
    assert (code, err, tf_loaded) == (0, "", False)
    assert out == "PASSED: 0 passed, 0 failed, 0 errored of 0 cases (shard 3/3 of a 2-case grid)\n"


def test_names_hold_every_axis_that_varies():
    plan = plan_sweep({"seed": "0,1", "activation": "linear,relu", "lengths": "3,2"},
                      CompareConfig())  # fmt: skip
    names = [c.name for c in plan.selection]
    assert len(set(names)) == 8
    assert names[0] == "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-act=linear-len=3-seed=0"
    assert names[-1] == "lstm5-f4-u2-s3-b1-float32-dense+time-distributed-act=relu-len=2-seed=1"
    # without a trunk --hidden changes nothing, yet the cases stay apart
    plan = plan_sweep({"rnn": "lstm,none", "hidden": "3,5"}, CompareConfig())
    assert [c.name.split("-f4")[0] for c in plan.selection] == [
        "lstm3", "lstm5", "none-h3", "none-h5",
    ]  # fmt: skip


# -- reproduce ------------------------------------------------------------------------------


def test_every_compare_option_can_be_written_by_reproduce():
    opts = {o for p in compare_command.params for o in (*p.opts, *p.secondary_opts)}
    for f in dataclasses.fields(CompareConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.default is True:
            flag = "--no-" + flag[2:]
        assert flag in opts, f.name


def test_reproduce_quotes_and_writes_every_non_default_option(tmp_path):
    folder = tmp_path / "my data"
    folder.mkdir()
    path = folder / "x.npy"
    np.save(path, np.ones((2, 3, 4), np.float32))
    cfg = CompareConfig(
        input=str(path), seed=3, lengths=(3, 2), dtype="float64", atol=1e-3, rtol=0.5,
        oracle=False, exact=True, variants=("dense", "conv1d"), max_memory="1GiB",
        learning_rate=0.1, train_steps=2,
    ).validated()  # fmt: skip
    command = reproduce_command(cfg)
    assert command == (
        f"tdcheck compare --variants dense,conv1d --input {shlex.quote(str(path))} --seed 3 "
        "--dtype float64 --atol 0.001 --rtol 0.5 --exact --no-oracle --max-memory 1073741824 "
        "--train-steps 2 --learning-rate 0.1 --lengths 3,2"
    )
    assert "'" in command  # the space in the folder is quoted
    assert compare_arguments(CompareConfig().validated()) == ["--input", "ones", "--seed", "0"]


def test_a_reproduce_command_gives_the_same_verdict(runner, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.linspace(-1, 1, 2 * 3 * 4).reshape(2, 3, 4))
    result = run(runner, "sweep", "--input", str(path), "--seed", "0,1", "--weights",
                 "independent", "--initializer", "random_normal:0.5", "--lengths", "3:2",
                 "--hidden", "3", "--format", "json")  # fmt: skip
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["summary"]["failed"] == 2
    for case in doc["cases"]:
        argv = shlex.split(case["reproduce"])
        assert argv[:2] == ["tdcheck", "compare"]
        again = run(runner, *argv[1:], "--format", "json")
        assert again.exit_code == 1, again.stderr
        single = json.loads(again.stdout)
        assert single["verdict"] == case["verdict"]
        assert single["comparisons"] == case["comparisons"]


# -- fingerprints and merge -----------------------------------------------------------------


def test_fingerprint_is_stable_and_readable():
    a = plan_sweep({"hidden": "3,4"}, CompareConfig(), shard=(1, 2)).fingerprint
    again = plan_sweep({"hidden": "3,4"}, CompareConfig(), shard=(2, 2)).fingerprint
    assert a == again  # the same sweep, whichever shard
    assert a["hash"].startswith("sha256:") and len(a["hash"]) == 7 + 64
    assert a["axes"]["hidden"] == [3, 4] and a["axes"]["seed"] == [0]
    assert a["shards"] == 2 and a["select"] is None and a["tdcheck"]
    assert a["options"]["input"] == "ones" and a["options"]["atol"] is None
    other = plan_sweep({"hidden": "3,5"}, CompareConfig(atol=1e-3, rtol=1e-3), shard=(1, 4),
                       select="lstm").fingerprint  # fmt: skip
    assert fingerprint_differences(a, other) == [
        "axes.hidden", "options.atol", "options.rtol", "select", "shards",
    ]  # fmt: skip


def test_merge_refuses_shards_of_different_grids(runner, tmp_path):
    a = [fake_report(tmp_path / f"a{k}.json", {"hidden": "3,4,5,6"}, (k, 4)) for k in (1, 2)]
    b = [fake_report(tmp_path / f"b{k}.json", {"hidden": "3,4,5,7"}, (k, 4)) for k in (3, 4)]
    result = run(runner, "merge", *a, *b)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"tdcheck: error: merge: {a[0]!r} and {b[0]!r} are reports of different sweeps "
        "(they differ in axes.hidden); merge only the shards of one sweep\n"
    )
    two = fake_report(tmp_path / "two.json", {"hidden": "3,4,5,6"}, (2, 2))
    result = run(runner, "merge", a[0], two)
    assert result.exit_code == 2 and "(they differ in shards)" in result.stderr
    seeded = fake_report(tmp_path / "s.json", {"hidden": "3,4,5,6"}, (2, 4),
                         base=CompareConfig(device="cpu", exact=True))  # fmt: skip
    result = run(runner, "merge", a[0], seeded)
    assert "(they differ in options.device, options.exact)" in result.stderr
    selected = fake_report(tmp_path / "k.json", {"hidden": "3,4,5,6"}, (2, 4), select="lstm")
    assert "(they differ in select)" in run(runner, "merge", a[0], selected).stderr


def test_merge_names_missing_shards_and_shows_them_in_junit(runner, tmp_path, junit_counts):
    paths = [fake_report(tmp_path / f"s{k}.json", {"seq": "2,3,4,5,6"}, (k, 3)) for k in (1, 2, 3)]
    junit = tmp_path / "all.xml"
    result = run(runner, "merge", paths[0], "--junit", str(junit), "--format", "json")
    assert result.exit_code == 1
    assert result.stderr == (
        "tdcheck: merge: shard 2/3 is missing (2 cases: "
        "lstm5-f4-u2-s3-b1-float32-dense+time-distributed, "
        "lstm5-f4-u2-s6-b1-float32-dense+time-distributed)\n"
        "tdcheck: merge: shard 3/3 is missing (1 case: "
        "lstm5-f4-u2-s4-b1-float32-dense+time-distributed)\n"
    )
    doc = json.loads(result.stdout)
    assert doc["passed"] is False and doc["complete"] is False
    assert doc["missing_shards"] == [2, 3]
    assert doc["summary"] == {"total": 2, "passed": 2, "failed": 0, "errored": 0, "not_run": 3}
    assert [(e["index"], e["shard"], e["reason"]) for e in doc["not_run"]] == [
        (1, 2, "not run: the report of shard 2/3 was not given"),
        (2, 3, "not run: the report of shard 3/3 was not given"),
        (4, 2, "not run: the report of shard 2/3 was not given"),
    ]
    assert junit_counts(junit) == (5, 0, 3)
    names = [tc.get("name") for tc in ET.parse(junit).getroot().iter("testcase")]
    assert names == [f"lstm5-f4-u2-s{s}-b1-float32-dense+time-distributed" for s in (2, 3, 4, 5, 6)]
    table = run(runner, "merge", paths[0], paths[2])
    assert table.exit_code == 1
    assert (
        "Not run (2):\n"
        "  lstm5-f4-u2-s3-b1-float32-dense+time-distributed: not run: the report of shard 2/3 "
        "was not given\n"
    ) in table.stdout
    complete = run(runner, "merge", *paths, "--junit", str(junit), "--quiet")
    assert complete.exit_code == 0 and complete.stderr == ""
    assert junit_counts(junit) == (5, 0, 0)


def test_merge_does_not_import_tensorflow(tmp_path):
    paths = [fake_report(tmp_path / f"s{k}.json", {"seq": "2,3"}, (k, 2)) for k in (1, 2)]
    code, out, err, tf_loaded = run_isolated("merge", *paths, "--quiet")
    assert (code, err, tf_loaded) == (0, "", False)
    assert out == "PASSED: 2 passed, 0 failed, 0 errored of 2 cases (merged from 2 reports)\n"


def _edit(path, change):
    doc = json.loads(Path(path).read_text())
    change(doc)
    Path(path).write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("fingerprint"), "has no 'fingerprint' key (is it a current sweep report?)"),
        (lambda d: d.pop("plan"), "has no 'plan' key (is it a current sweep report?)"),
        (lambda d: d["fingerprint"].pop("hash"), ": fingerprint has no 'hash' key"),
        (lambda d: d["fingerprint"]["axes"].update(seq=[2, 3, 4]), ": fingerprint.hash does not match the fingerprint (the report was edited); merge unedited shard reports"),
        (lambda d: d["cases"][0].pop("status"), ": cases[0] has no 'status' key"),
        (lambda d: d["cases"][0].update(index="0"), ": cases[0]: 'index' has the wrong type"),
        (lambda d: d["cases"][0].update(status="great"), ": cases[0]: unknown status 'great'"),
        (lambda d: d.update(grid_size=True), ": 'grid_size' has the wrong type"),
        (lambda d: d.update(shard=[3, 2]), ": 'shard' must be [K, N] with 1 <= K <= N"),
        (lambda d: d.update(not_run=[{"index": 1}]), ": not_run[0] has no 'name' key"),
        (lambda d: d.update(merged_from=2), " is already a merged report; merge the shard reports"),
        (lambda d: d["cases"][0].pop("verdict"), ": cases[0] has no 'verdict' key"),
        (lambda d: d["cases"][0]["comparisons"].append([]), ": cases[0].comparisons[0] is not an object"),
        (lambda d: d["cases"][0]["comparisons"].append({"a": "x"}), ": cases[0].comparisons[0] has no 'b' key"),
        (lambda d: d.update(environment=[]), ": 'environment' has the wrong type"),
        (lambda d: d["plan"].update(indices=["0", "1"]), ": 'plan' must hold as many distinct whole-number indices as names"),
        (lambda d: d["plan"].update(indices=[0, 0]), ": 'plan' must hold as many distinct whole-number indices as names"),
    ],
)  # fmt: skip
def test_merge_refuses_malformed_reports(runner, tmp_path, change, message):
    path = _edit(fake_report(tmp_path / "r.json", {"seq": "2,3"}, (1, 2)), change)
    result = run(runner, "merge", path)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"tdcheck: error: merge: {path!r}")
    assert result.stderr.endswith(message + "\n") or message + " (is it" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not a JSON report (Expecting value: line 1 column 1 (char 0))"),
        ("[1, 2]", "is not a tdcheck sweep JSON report"),
        ('{"kind": "bench"}', "is not a tdcheck sweep JSON report"),
        ("\xff", "is not a JSON report"),
    ],
)
def test_merge_refuses_files_that_are_not_sweep_reports(runner, tmp_path, text, message):
    path = tmp_path / "x.json"
    path.write_text(text, encoding="latin-1")
    result = run(runner, "merge", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"tdcheck: error: merge: {str(path)!r} {message}")


def test_merge_names_a_duplicated_case(runner, tmp_path):
    one = fake_report(tmp_path / "1.json", {"seq": "2,3,4"}, (1, 2))
    two = fake_report(tmp_path / "2.json", {"seq": "2,3,4"}, (2, 2))
    _edit(two, lambda d: d["cases"].append(json.loads(Path(one).read_text())["cases"][0]))
    result = run(runner, "merge", one, two)
    assert result.exit_code == 2
    assert result.stderr == (
        "tdcheck: error: merge: case 0 (lstm5-f4-u2-s2-b1-float32-dense+time-distributed) "
        f"is in both {one!r} and {two!r}\n"
    )


def test_merge_checks_cases_against_the_plan(runner, tmp_path):
    one = fake_report(tmp_path / "1.json", {"seq": "2,3,4"}, (1, 2))
    two = fake_report(tmp_path / "2.json", {"seq": "2,3,4"}, (2, 2))
    # a case moved into the other shard's report
    moved = _edit(fake_report(tmp_path / "m.json", {"seq": "2,3,4"}, (2, 2)),
                  lambda d: d["cases"].append(json.loads(Path(one).read_text())["cases"][1]))  # fmt: skip
    result = run(runner, "merge", moved)
    assert result.stderr == (
        f"tdcheck: error: merge: {moved!r}: case 2 (lstm5-f4-u2-s4-b1-float32-dense+time-distributed) "
        "belongs to shard 1/2, not 2/2\n"
    )
    renamed = _edit(two, lambda d: d["cases"][0].update(name="lstm5-other"))
    result = run(runner, "merge", one, renamed)
    assert result.stderr == (
        f"tdcheck: error: merge: {renamed!r}: case 1 (lstm5-other) is not in the sweep's plan\n"
    )
    two = fake_report(tmp_path / "2.json", {"seq": "2,3,4"}, (2, 2))
    edited = _edit(two, lambda d: d["plan"]["names"].reverse())
    result = run(runner, "merge", one, edited)
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: merge: {one!r} and {edited!r} have the same fingerprint but different "
        "plans (edited reports?)\n"
    )
    # a case both run and listed as not run
    both = _edit(fake_report(tmp_path / "b.json", {"seq": "2,3,4"}, (1, 2)),
                 lambda d: d["not_run"].append({"index": 0, "name": d["cases"][0]["name"],
                                                "shard": 1, "reason": "not run: x"}))  # fmt: skip
    result = run(runner, "merge", both)
    assert "case 0 (lstm5-f4-u2-s2-b1-float32-dense+time-distributed) is in both" in result.stderr


def test_merge_refuses_an_oversized_report(runner, tmp_path, monkeypatch):
    import tdcheck.commands.merge

    path = fake_report(tmp_path / "r.json", {"seq": "2,3"})
    monkeypatch.setattr(tdcheck.commands.merge, "MAX_REPORT_BYTES", 100)
    result = run(runner, "merge", path)
    size = Path(path).stat().st_size
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: merge: {path!r} is {size} bytes, over the 100 bytes a sweep report "
        "may have\n"
    )


# -- compare --junit and env ----------------------------------------------------------------


def test_compare_junit_has_a_testcase_per_comparison(runner, tmp_path, junit_counts):
    junit = tmp_path / "c.xml"
    result = run(runner, "compare", "--hidden", "3", "--weights", "independent",
                 "--initializer", "he_normal", "--junit", str(junit), "--quiet")  # fmt: skip
    assert result.exit_code == 1
    assert junit_counts(junit) == (7, 3, 0)  # the pair, its float64 pair, its statistical
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite.get("name") == (
        "tdcheck compare lstm3-f4-u2-s3-b1-float32-dense+time-distributed-init=he_normal-"
        "weights=independent"
    )
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "output time-distributed vs dense", "output trunk vs oracle", "output dense vs oracle",
        "output time-distributed vs oracle", "same-computation time-distributed vs dense",
        "statistical dense vs exact", "statistical time-distributed vs exact",
    ]  # fmt: skip
    failure = cases[0].find("failure")
    assert failure.get("message") == result.stdout.strip()
    assert failure.text.startswith("FAIL output time-distributed vs dense: max_abs_diff=")
    assert "mismatched=6/6" in failure.text
    passing = run(runner, "compare", "--hidden", "3", "--junit", str(junit), "--quiet")
    assert passing.exit_code == 0 and junit_counts(junit) == (7, 0, 0)


def test_compare_junit_path_is_checked_before_running(runner):
    result = run(runner, "compare", "--junit", "no/such/dir/c.xml")
    assert result.exit_code == 2
    assert result.stderr == "tdcheck: error: --junit: the folder 'no/such/dir' does not exist\n"


def test_env_text_and_json(runner, tf_keras):
    tf, keras = tf_keras
    doc = json.loads(run(runner, "env", "--format", "json").stdout)
    from tdcheck import __version__

    assert doc["tdcheck"] == __version__
    assert (doc["tensorflow"], doc["keras"], doc["numpy"]) == (
        tf.__version__, keras.__version__, np.__version__)  # fmt: skip
    assert doc["python"] == ".".join(map(str, sys.version_info[:3]))
    gpus = [d for d in doc["devices"] if d.startswith("GPU")]
    assert "CPU:0" in doc["devices"] and doc["gpus"] == len(gpus)
    text = run(runner, "env")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0] == f"tdcheck     {__version__}"
    assert f"tensorflow  {tf.__version__}" in lines
    from tdcheck.commands.env import installed_versions
    from tdcheck.core.install import untested_note

    note = untested_note(installed_versions())  # None on the versions tdcheck was tested with
    assert doc["notes"] == ([note] if note else []) and doc["backend"] == "tensorflow"
    assert (f"note: {note}" in text.stdout.splitlines()) is bool(note)
    from importlib import metadata

    from tdcheck.engines.base import installed

    for module, name in (("jax", "jax"), ("torch", "torch"), ("tf_keras", "keras2")):
        version = metadata.version(module) if installed(name) else None
        assert doc[module] == version  # the other backends, for the CI log
        assert f"{module.ljust(10)}  {version or 'not installed'}" in lines


def test_fingerprint_holds_the_input_file_content(tmp_path):
    import hashlib

    path = tmp_path / "x.npy"
    np.save(path, np.ones((1, 3, 4)))
    first = plan_sweep({"seed": "0,1"}, CompareConfig(input=str(path))).fingerprint
    assert first["options"]["input_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    np.save(path, np.zeros((1, 3, 4)))  # same name, other numbers: another sweep
    second = plan_sweep({"seed": "0,1"}, CompareConfig(input=str(path))).fingerprint
    assert fingerprint_differences(first, second) == ["options.input_sha256"]


def test_interrupt_while_tensorflow_loads_reports_every_case_as_not_run(
    runner, tmp_path, monkeypatch, junit_counts
):
    import tdcheck.commands.session

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tdcheck.commands.session.Session, "__init__", interrupted)
    out, junit = tmp_path / "r.json", tmp_path / "r.xml"
    result = run(runner, "sweep", "--seq", "2,3", "--output", str(out), "--junit", str(junit),
                 "--quiet")  # fmt: skip
    assert result.exit_code == 130
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["cases"] == []
    assert [e["index"] for e in doc["not_run"]] == [0, 1]
    assert junit_counts(junit) == (2, 0, 2)


def test_grid_doctests():
    import doctest

    import tdcheck.core.grid

    results = doctest.testmod(tdcheck.core.grid)
    assert results.failed == 0 and results.attempted == 11


def _paths(value, prefix=()):
    """Every key path of a JSON document."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def test_no_mutation_of_a_report_makes_merge_crash(tmp_path_factory):
    from click.testing import CliRunner
    from hypothesis import given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("mutations")
    clean = json.loads(Path(fake_report(folder / "clean.json", {"seq": "2,3"})).read_text())
    comparison = {"kind": "output", "quantity": "output", "a": "time-distributed", "b": "dense",
                  "max_abs_diff": 0.5, "max_rel_diff": "inf", "mean_abs_diff": 0.25,
                  "max_ulp": None, "mismatched": 1, "total": 6, "worst_index": [0, 1, 0],
                  "bitwise_equal": False, "atol": 1e-5, "rtol": 1e-6, "passed": False,
                  "note": None, "margin": 2.5, "allowed": 1e-5, "rule": "atol/rtol"}  # fmt: skip
    clean["cases"][0].update(status="failed", verdict="NOT EQUIVALENT", comparisons=[comparison],
                             reproduce="tdcheck compare --seq 2")  # fmt: skip
    paths = _paths(clean)
    runner = CliRunner()

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(paths), st.sampled_from([None, True, -1, 2.5, "x", [], {}, "drop"]))
    def check(path, value):
        doc = json.loads(json.dumps(clean))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if value == "drop":
            parent.pop(path[-1])
        else:
            parent[path[-1]] = value
        target = folder / "mutated.json"
        target.write_text(json.dumps(doc))
        result = runner.invoke(cli, ["merge", str(target), "--junit", str(folder / "m.xml")])
        assert result.exit_code in (0, 1, 2), (path, value, result.output)
        if result.exit_code == 2:
            assert result.stderr.startswith("tdcheck: error: merge: ")
            assert result.stderr.count("\n") == 1

    check()


def test_ctrl_c_during_the_report_imports_is_held_until_they_finish():
    import os
    import signal

    from tdcheck.cli.sweep import _interrupt_after

    steps = []
    with pytest.raises(KeyboardInterrupt), _interrupt_after():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("the block went on")
    assert steps == ["the block went on"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with _interrupt_after():  # no Ctrl-C: nothing raised
        steps.append("quiet")
    assert steps[-1] == "quiet"
