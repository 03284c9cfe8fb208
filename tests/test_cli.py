"""The command line through CliRunner: exit codes, exact messages, formats, files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tdcheck import __version__
from tdcheck.cli import cli


def run(runner, *args, columns="200"):
    # A wide fixed width: pytest (and xdist workers) may set COLUMNS to 80.
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": columns})


def test_version(runner):
    result = run(runner, "--version")
    assert result.exit_code == 0
    assert result.output == f"tdcheck, version {__version__}\n"


def test_help_lists_every_option(runner):
    result = run(runner, "compare", "--help")
    assert result.exit_code == 0
    for option in (
        "--features", "--hidden", "--units", "--seq", "--batch", "--rnn", "--initializer",
        "--bias-initializer", "--activation", "--variants", "--weights", "--input", "--seed",
        "--device", "--atol", "--rtol", "--exact", "--oracle / --no-oracle", "--format",
        "--output", "--save-arrays", "--quiet", "--max-memory", "--dtype",
    ):  # fmt: skip
        assert option in result.output, option


def test_default_table_report(runner):
    result = run(runner, "compare")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("tdcheck compare: input (1, 3, 4) -> lstm(5) -> 2 units; float32 on ")
    for text in ("Layers", "Outputs", "Same computation (float64, from the stored weights)", "TimeDistributed(Dense)", "224", "time-distributed vs dense",
                 "dense vs oracle", "PASS"):  # fmt: skip
        assert text in out, text
    assert out.rstrip().splitlines()[-1].startswith("EQUIVALENT")
    assert result.stderr == ""


def test_json_is_pure_and_complete(runner):
    result = run(runner, "compare", "--format", "json", "--variants", "dense,conv1d")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["passed"] is True
    assert doc["config"]["variants"] == ["dense", "conv1d"]
    assert [(c["a"], c["b"]) for c in doc["comparisons"]] == [
        ("conv1d", "dense"), ("trunk", "oracle"), ("dense", "oracle"), ("conv1d", "oracle"),
        ("conv1d", "dense"), ("dense", "exact"), ("conv1d", "exact"),
    ]  # fmt: skip
    assert [c["rule"] for c in doc["comparisons"]][-3:] == ["float64", "statistical", "statistical"]
    assert doc["total_params"] == 224


def test_markdown(runner):
    result = run(runner, "compare", "--format", "markdown")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## tdcheck compare: input (1, 3, 4)")
    assert "| layer | type | output shape | params | connected to |" in lines
    assert "| lstm | LSTM | (None, None, 5) | 200 | input |" in lines
    assert "| **total** | | | **224** | |" in lines
    assert any(
        line.startswith("| output | time-distributed vs dense | (1, 3, 2) |") for line in lines
    )


def test_narrow_output_stacks_the_comparisons(runner):
    result = run(runner, "compare", columns="80")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if line.startswith(" ")) <= 80
    # 80 columns: one line per pair (the compact columns fit), every number whole
    row = next(line for line in lines if line.startswith(" time-distributed vs dense"))
    tokens = row.split()
    assert tokens[3:8] == ["0", "0", "0", "0/6", "yes"] and tokens[-1] == "PASS"
    assert "\x1b[" not in result.stdout


def test_quiet_prints_only_the_verdict(runner):
    result = run(runner, "compare", "--quiet")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith("EQUIVALENT")


def test_failure_exits_1_with_the_worst_element(runner):
    result = run(runner, "compare", "--initializer", "glorot_uniform", "--weights", "independent")
    assert result.exit_code == 1
    out = result.stdout
    assert "FAIL" in out
    assert (
        "NOT EQUIVALENT: 3 of 7 comparisons failed (the variants disagree); "
        "worst time-distributed vs dense at [" in out
    )
    assert "6/6 elements mismatched (100.0%)" in out
    assert "different computations: stored weights differ: kernel 10 of 10 elements" in out


def test_exact_applies_to_variant_pairs_and_the_oracle_keeps_tolerances(runner):
    result = run(runner, "compare", "--exact", "--format", "json")
    doc = json.loads(result.stdout)
    pair, *oracle = doc["comparisons"]
    assert pair["exact"] is True and pair["b"] == "dense"
    assert pair["passed"] == pair["bitwise_equal"]
    assert all(c["exact"] is False and c["passed"] for c in oracle)
    assert result.exit_code == (0 if pair["bitwise_equal"] else 1)


def test_no_oracle(runner):
    doc = json.loads(run(runner, "compare", "--no-oracle", "--format", "json").stdout)
    # no oracle; the float64 and statistical rules need none (the exact head of the weights)
    assert [c["b"] for c in doc["comparisons"]] == ["dense", "dense", "exact", "exact"]


def test_loose_tolerances_turn_a_failure_into_a_pass(runner):
    args = ["compare", "--initializer", "constant:0.1", "--weights", "independent"]
    assert run(runner, *args, "--atol", "0", "--rtol", "0", "--no-oracle").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden", "0"], "tdcheck: error: --hidden: must be > 0 (got 0)\n"),
        (["--seq", "-3"], "tdcheck: error: --seq: must be > 0 (got -3)\n"),
        (
            ["--initializer", "bogus"],
            "tdcheck: error: --initializer: unknown initializer 'bogus'; choose from constant, zeros, ones, random_normal, truncated_normal, random_uniform, glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, orthogonal, variance_scaling\n",
        ),
        (
            ["--variants", "dense,nope"],
            "tdcheck: error: --variants: unknown variant 'nope'; choose from dense, time-distributed, conv1d, einsum\n",
        ),
        (
            ["--atol", "1e-3"],
            "tdcheck: error: --atol and --rtol go together: give both or neither\n",
        ),
        (
            ["--atol", "-1", "--rtol", "0"],
            "tdcheck: error: --atol: must be a finite number >= 0 (got -1.0)\n",
        ),
        (
            ["--atol", "nan", "--rtol", "0"],
            "tdcheck: error: --atol: must be a finite number >= 0 (got nan)\n",
        ),
        (
            ["--input", "missing.npy"],
            "tdcheck: error: --input: no such file 'missing.npy' (or use ones, random)\n",
        ),
        (
            ["--output", "no/such/dir/r.json"],
            "tdcheck: error: --output: the folder 'no/such/dir' does not exist\n",
        ),
        (
            ["--output", "report.csv"],
            "tdcheck: error: --output: cannot tell the format of 'report.csv'; use a name ending in .json, .md, .markdown, .txt\n",
        ),
        (
            ["--save-arrays", "no/dir/a.npz"],
            "tdcheck: error: --save-arrays: the folder 'no/dir' does not exist\n",
        ),
        (
            ["--hidden", "4096", "--seq", "100000", "--batch", "64"],
            "tdcheck: error: this configuration needs about 5.2 TiB, over the 4.0 GiB limit; shrink it or raise --max-memory\n",
        ),
        (
            ["--max-memory", "lots"],
            "tdcheck: error: --max-memory: cannot read 'lots' as a size (e.g. 8GiB, 500MB)\n",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(runner, tmp_path, args, message):
    os.chdir(tmp_path)
    result = run(runner, "compare", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == message


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "xml"], "'xml' is not one of 'table', 'json', 'markdown'"),
        (["--rnn", "lstm2"], "'lstm2' is not one of 'lstm', 'gru', 'simple-rnn', 'none'"),
        (["--hidden", "four"], "'four' is not a valid integer"),
        (["--nope"], "--nope"),
        (["--activation", "mish"], "'mish' is not one of"),
    ],
)
def test_click_usage_errors_are_one_line_too(runner, args, needle):
    # Click words these messages (and words them differently across versions); tdcheck
    # makes them one line with a pointer to --help.
    result = run(runner, "compare", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("tdcheck: error: ")
    assert result.stderr.endswith(" (see 'tdcheck compare --help')\n")
    assert result.stderr.count("\n") == 1
    assert needle in result.stderr


def test_bad_npy_files_exit_2(runner, tmp_path):
    cases = {
        "flat.npy": (np.zeros((3, 4)), "has shape (3, 4); it must be 3-D (batch, seq, features)"),
        "nan.npy": (np.full((1, 2, 3), np.nan), "holds 6 NaN or infinite value(s)"),
        "text.npy": (np.array([[["x"]]]), "holds dtype <U1; it must be a real numeric array"),
    }
    for name, (array, message) in cases.items():
        path = tmp_path / name
        np.save(path, array)
        result = run(runner, "compare", "--input", str(path))
        assert result.exit_code == 2, name
        assert result.stderr == f"tdcheck: error: --input: {str(path)!r} {message}\n"
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([[[object()]]], dtype=object), allow_pickle=True)
    result = run(runner, "compare", "--input", str(pickled))
    assert result.exit_code == 2
    assert "holds Python objects; tdcheck never unpickles files" in result.stderr


def test_npy_shape_disagreeing_with_a_given_size(runner, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((2, 5, 4), np.float32))
    result = run(runner, "compare", "--input", str(path), "--seq", "3")
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: --seq 3 disagrees with the input file {str(path)!r}, whose shape "
        "(batch, seq, features) is (2, 5, 4)\n"
    )
    ok = run(runner, "compare", "--input", str(path), "--seq", "5", "--format", "json")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["config"]["batch"] == 2


def test_output_files_by_suffix(runner, tmp_path):
    for suffix, check in (
        (".json", lambda text: json.loads(text)["passed"] is True),
        (".md", lambda text: text.startswith("## tdcheck compare")),
        (".txt", lambda text: "Outputs" in text and "\x1b[" not in text),
    ):
        path = tmp_path / f"report{suffix}"
        result = run(runner, "compare", "--quiet", "--output", str(path))
        assert result.exit_code == 0
        assert check(path.read_text()), suffix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "report.txt"]


def test_save_arrays_keys(runner, tmp_path):
    path = tmp_path / "arrays.npz"
    result = run(runner, "compare", "--quiet", "--variants", "dense,time-distributed,conv1d",
                 "--save-arrays", str(path))  # fmt: skip
    assert result.exit_code == 0
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        assert keys == {
            "input", "valid", "features", "features/oracle", "outputs/dense",
            "outputs/time-distributed", "outputs/conv1d", "outputs/oracle/dense",
            "outputs/oracle/time-distributed", "outputs/oracle/conv1d", "meta/report.json",
            "weights/rnn/kernel", "weights/rnn/recurrent_kernel",
            "weights/rnn/bias", "weights/dense/kernel", "weights/dense/bias",
            "weights/time-distributed/kernel", "weights/time-distributed/bias",
            "weights/conv1d/kernel", "weights/conv1d/bias", "same-computation/dense",
            "same-computation/time-distributed", "same-computation/conv1d",
        }  # fmt: skip
        assert data["input"].shape == (1, 3, 4)
        assert data["weights/rnn/kernel"].shape == (4, 20)
        assert data["weights/rnn/recurrent_kernel"].shape == (5, 20)
        assert data["weights/rnn/bias"].shape == (20,)
        assert data["weights/conv1d/kernel"].shape == (1, 5, 2)
        assert data["outputs/oracle/dense"].dtype == np.float64
    assert [p.name for p in tmp_path.iterdir()] == ["arrays.npz"]  # no temp file left


def test_save_arrays_needs_npz_suffix(runner, tmp_path):
    result = run(runner, "compare", "--save-arrays", str(tmp_path / "a.bin"))
    assert result.exit_code == 2
    assert result.stderr.endswith("must end in .npz\n")


def test_no_gpu_exits_3(runner, has_gpu):
    if has_gpu:
        pytest.skip("a GPU is visible")
    result = run(runner, "compare", "--device", "gpu")
    assert result.exit_code == 3
    assert result.stderr.startswith("tdcheck: error: --device gpu: no GPU is visible to TensorFlow")


def test_unexpected_errors_are_one_line_exit_3(runner, monkeypatch):
    import tdcheck.commands.compare

    def boom(config):
        raise RuntimeError("OOM when allocating tensor\nwith shape [1,2]")

    monkeypatch.setattr(tdcheck.commands.compare, "compare", boom)
    monkeypatch.delenv("TDCHECK_DEBUG", raising=False)
    result = runner.invoke(cli, ["compare"])
    assert result.exit_code == 3
    assert result.stderr == (
        "tdcheck: error: unexpected RuntimeError: OOM when allocating tensor with shape [1,2] "
        "(TDCHECK_DEBUG=1 shows the traceback)\n"
    )
