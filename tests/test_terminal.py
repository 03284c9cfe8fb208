"""Every renderer at 60, 80 and 120 columns with a real Rich console: no line wider than the
console, no value cut to an ellipsis, every key number whole; piped output not hard-wrapped;
colour as --color, NO_COLOR and FORCE_COLOR decide."""

from __future__ import annotations

import copy
import io
import json

import pytest
from rich.console import Console

from tdcheck.cli import cli
from tdcheck.core.result import fmt
from tdcheck.reports import bench_render, render, sweep_render
from tdcheck.reports.color import set_color_mode

WIDTHS = (60, 80, 120)


def terminal_text(draw, width: int) -> str:
    """What a terminal ``width`` columns wide shows (prose wraps, as on a real terminal)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None,
                      soft_wrap=False, legacy_windows=False)  # fmt: skip
    draw(console)
    return console.export_text()


def check_fits(text: str, width: int, numbers: list[str]) -> None:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text
    tokens = set(text.split())
    for number in numbers:
        assert number in tokens, f"{number!r} is not whole at {width} columns"


@pytest.fixture(scope="module")
def compare_results():
    from tdcheck.commands.compare import compare

    passing = compare(hidden=3, seq=2, grad=True, train_steps=2,
                      variants=("dense", "time-distributed", "conv1d"))  # fmt: skip
    failing = compare(hidden=3, seq=2, weights="independent", initializer="he_normal")
    return passing.result if hasattr(passing, "result") else passing, (
        failing.result if hasattr(failing, "result") else failing
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_compare_table_fits(compare_results, width, wide):
    for result in compare_results:
        text = terminal_text(lambda console, r=result: render._render_table(r, console, wide),
                             width)  # fmt: skip
        numbers = [fmt(c.stats.max_abs_diff) for c in result.comparisons]
        numbers += [f"{c.stats.mismatched}/{c.stats.total}" for c in result.comparisons]
        numbers += [f"{result.total_params:,}"]
        check_fits(text, width, numbers)
        assert ("mean abs" in text) is wide  # --wide shows every column


def test_compare_table_layouts_by_width(compare_results):
    passing = compare_results[0]
    wide = terminal_text(lambda c: render._render_table(passing, c), 120).splitlines()
    # 120 columns: the outputs table has one line per pair, the numbers beside the pair
    assert any(line.startswith(" conv1d vs dense ") and line.rstrip().endswith("PASS")
               for line in wide)  # fmt: skip
    narrow = terminal_text(lambda c: render._render_table(passing, c), 60).splitlines()
    assert " conv1d vs dense" in narrow  # stacked: the pair on a line of its own
    assert any(line.startswith("ULP: largest difference in units in the last place")
               for line in narrow)  # the legend of the short headers  # fmt: skip


def test_compare_shows_margin_when_the_judge_reports_it(compare_results):
    result = copy.deepcopy(compare_results[0])
    for c in result.comparisons:
        object.__setattr__(c.stats, "margin", 0.25)
    text = terminal_text(lambda c: render._render_table(result, c), 80)
    assert " margin " in text.splitlines()[text.splitlines().index("Outputs") + 1] + " "
    assert "0.25" in text.split()
    assert "margin: max |diff| / allowed difference (<= 1 passes)" in " ".join(text.split())


def test_piped_prose_is_never_hard_wrapped(compare_results, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    failing = compare_results[1]
    out = io.StringIO()
    render.render_table(failing, out)
    lines = out.getvalue().splitlines()
    assert failing.verdict() in lines  # the whole verdict on one line, grep-able
    for line in render.failure_lines(failing):
        assert "  " + line in lines


SWEEP_CASE_NAME = "lstm-h64-u2-s32-b4-float32-dense,time-distributed,conv1d-seed12345-glorot"


def sweep_doc():
    comp = {"kind": "gradient", "quantity": "trunk.recurrent_kernel", "a": "time-distributed",
            "b": "dense", "max_abs_diff": 4.52e-09, "max_rel_diff": 1.2e-07, "max_ulp": 3,
            "bitwise_equal": False, "passed": True, "margin": 0.5}  # fmt: skip
    failed = dict(comp, passed=False, max_abs_diff=0.0123, max_ulp=123456, a="conv1d")
    cases = [
        {"index": 0, "name": SWEEP_CASE_NAME, "status": "passed", "seconds": 1.5,
         "comparisons": [comp], "verdict": "EQUIVALENT", "error": None},
        {"index": 1, "name": SWEEP_CASE_NAME + "-b", "status": "failed", "seconds": 2.25,
         "comparisons": [comp, failed], "verdict": "NOT EQUIVALENT: conv1d vs dense differs",
         "error": None},
        {"index": 2, "name": SWEEP_CASE_NAME + "-c", "status": "errored", "seconds": 0.1,
         "comparisons": [], "verdict": "", "error": "--lengths: length 9 is out of range 1..3"},
    ]  # fmt: skip
    return {"passed": False, "summary": {"total": 3, "passed": 1, "failed": 1, "errored": 1},
            "grid_size": 3, "shard": None, "interrupted": False, "stopped_early": False,
            "cases": cases}  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_sweep_table_fits(width, wide):
    doc = sweep_doc()
    text = terminal_text(lambda c: sweep_render._render_table(doc, c, wide), width)
    check_fits(text, width, ["4.52e-09", "0.0123", "123456", "0/1", "0/2"])
    assert SWEEP_CASE_NAME in text.split() or width < len(SWEEP_CASE_NAME)
    assert "--lengths: length 9 is out of range 1..3" in " ".join(text.split())


def test_sweep_piped_keeps_case_rows_whole(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    sweep_render.render_table(sweep_doc(), out)
    row = next(line for line in out.getvalue().splitlines()
               if line.startswith(" " + SWEEP_CASE_NAME + "-b"))  # fmt: skip
    assert row.split()[1:5] == ["FAILED", "0.0123", "123456", "0/2"]


def bench_doc():
    def row(variant, median, ratio, matches=True):
        return {"variant": variant, "mode": "graph", "time_dim": "dynamic", "seq": 1000,
                "batch": 32, "min_s": median * 0.9, "median_s": median, "max_s": median * 1.5,
                "ratio_to_dense": ratio, "throughput": 32000 / median, "efficiency": 0.123,
                "trace_s": 1.234, "repeats": 20, "flops": 1, "error": None,
                "matches_dense": matches}  # fmt: skip

    return {
        "equivalent": True,
        "equivalence": {"passed": True, "verdict": "EQUIVALENT", "seq": 10, "batch": 32},
        "plan": {"what": "head only", "backward": False, "repeats": 20, "warmup": 3},
        "environment": {
            "device": "CPU:0",
            "device_name": "x86_64",
            "cpu_count": 2,
            "tensorflow": "2.21.0",
            "keras": "3.15.1",
        },
        "results": [
            row("dense", 0.00123, 1.0),
            row("time-distributed", 0.0456, 37.1),
            row("einsum", 0.000987, 0.802),
        ],
        "reference": [dict(row("matmul", 0.000111, None), matches=None)],
        "notes": [],
    }


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_bench_table_fits(width, wide):
    doc = bench_doc()
    text = terminal_text(lambda c: bench_render._render_table(doc, c, wide), width)
    check_fits(text, width, ["1.23", "45.6", "37.1", "0.802", "111"])
    assert ("efficiency" in text) is wide
    assert "graph, dynamic length, seq 1000, batch 32" in text


# -- colour ------------------------------------------------------------------------------------
@pytest.fixture
def color_mode():
    yield set_color_mode
    set_color_mode("auto")


def test_color_modes_and_environment(compare_results, monkeypatch, color_mode):
    result = compare_results[0]
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def ansi() -> bool:
        out = io.StringIO()
        render.render_table(result, out, width=120)
        return "\x1b[" in out.getvalue()

    assert not ansi()  # auto, not a terminal
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert ansi()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not ansi()  # NO_COLOR wins over FORCE_COLOR in auto
    color_mode("always")
    assert ansi()
    color_mode("never")
    monkeypatch.delenv("NO_COLOR")
    assert not ansi()
    color_mode("always")
    assert "\x1b[" not in render.render(result, "table")  # files are never coloured


def test_color_option_on_the_group(runner, tmp_path):
    out = tmp_path / "r.txt"
    result = runner.invoke(cli, ["--color", "always", "compare", "--hidden", "3", "--seq", "2",
                                 "--output", str(out)], env={"COLUMNS": "100"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "\x1b[1;32mEQUIVALENT" in result.stdout
    assert "\x1b[" not in out.read_text()
    result = runner.invoke(cli, ["--color", "never", "compare", "--hidden", "3", "--seq", "2"],
                           env={"FORCE_COLOR": "1", "COLUMNS": "100"})  # fmt: skip
    assert "\x1b[" not in result.stdout
    bad = runner.invoke(cli, ["--color", "alway", "compare"])
    assert bad.exit_code == 2
    assert "(did you mean 'always'?)" in bad.stderr


# -- help ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["compare", "sweep", "merge", "bench"])
def test_help_has_groups_examples_and_exit_codes(runner, command):
    text = runner.invoke(cli, [command, "--help"], env={"COLUMNS": "100"}).output
    assert "Example:" in text
    assert "Exit codes: 0 " in " ".join(text.split())
    assert "Output options:" in text
    if command != "merge":
        assert "Model options:" in text and "Run options:" in text
    assert "\nOptions:" not in text  # every option is in a named group


def test_did_you_mean_for_click_choices_and_config_values(runner):
    result = runner.invoke(cli, ["compare", "--rnn", "lstn"])
    assert result.exit_code == 2
    assert "'lstn' is not one of 'lstm', 'gru', 'simple-rnn', 'none' (did you mean 'lstm'?)" in (
        result.stderr
    )
    result = runner.invoke(cli, ["sweep", "--variants", "dens,time-distributed"])
    assert result.exit_code == 2
    assert result.stderr.startswith("tdcheck: error: --variants: unknown variant 'dens' "
                                    "(did you mean 'dense'?); choose from")  # fmt: skip
    result = runner.invoke(cli, ["compare", "--initializer", "glorot_unifrom"])
    assert "(did you mean 'glorot_uniform'?)" in result.stderr
    result = runner.invoke(cli, ["compare", "--rnn", "zzzz"])
    assert "did you mean" not in result.stderr  # nothing close: no guess


def test_json_is_unchanged_by_the_table_options(runner):
    result = runner.invoke(cli, ["--color", "always", "compare", "--hidden", "3", "--seq", "2",
                                 "--format", "json", "--wide"])  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(result.stdout)["passed"] is True


# -- progress ------------------------------------------------------------------------------------
def test_bench_status_names_the_cell_and_estimates_the_rest():
    from tdcheck.reports.progress import BenchStatus

    ticks = iter([0.0, 100.0, 110.0, 130.0, 200.0])  # start, then each cell's start
    status = BenchStatus(4, clock=lambda: next(ticks))
    assert status.line("eager static seq=10 batch=32") == (
        "[1/4] eager static seq=10 batch=32: compiling and timing"
    )
    # one cell took 10 s: three left, about 30 s
    assert status.line("graph static seq=10 batch=32").endswith(", about 30 s left")
    # two cells took 30 s in all: 15 s each, two left
    assert status.line("graph static seq=100 batch=32") == (
        "[3/4] graph static seq=100 batch=32: compiling and timing, about 30 s left"
    )
    assert status.line("xla static seq=100 batch=32").endswith("about 33 s left")  # 100/3


def test_progress_is_silent_off_a_terminal(capsys):
    from tdcheck.reports.progress import progress_reporter, tensorflow_loaded

    with progress_reporter(3) as on_case:
        on_case(None)  # off a terminal the callback does nothing at all
    assert capsys.readouterr() == ("", "")
    import tdcheck.engines.tensorflow as engine

    assert tensorflow_loaded() is (engine._LOADED is not None)


@pytest.mark.parametrize("args", [["--help"], ["compare", "--help"], ["bench", "--help"]])
def test_help_fits_80_columns(runner, args):
    text = runner.invoke(cli, args, env={"COLUMNS": "80"}, terminal_width=80).output
    assert max(len(line) for line in text.splitlines()) <= 80


def test_sweep_bar_on_a_terminal_says_what_it_is_doing(monkeypatch, color_mode):
    import sys

    from tdcheck.commands.sweep import CaseResult
    from tdcheck.reports import progress

    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "tensorflow_loaded", lambda: False)
    color_mode("never")  # the bar still draws (a live display), without colour
    with progress.progress_reporter(3) as on_case:
        on_case(CaseResult(0, "case", {}, "failed", 0.1))
    text = err.getvalue()
    assert "loading TensorFlow ..." in text
    assert "1/3" in text and "0 passed 1 failed 0 errored" in text
    assert "\x1b[3" not in text  # no colour codes


@pytest.mark.parametrize(
    ("term", "group"),
    [("--hidden INT", "Model options"), ("-q, --quiet", "Output options"),
     ("-k EXPR", "Run options"), ("--oracle / --no-oracle", "Numerics options"),
     ("-h, --help", "Other options"), ("--some-new-option N", "Other options")],
)  # fmt: skip
def test_help_rows_land_in_their_group(term, group):
    from tdcheck.cli.help import option_group

    assert option_group(term) == group
