"""Real processes: the installed console script, ``python -m tdcheck``, clean streams, speed of --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = shutil.which("tdcheck") or os.path.join(os.path.dirname(sys.executable), "tdcheck")
ENV = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TDCHECK_DEBUG")}


def run(*args, env=None, timeout=120):
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env={**ENV, **(env or {})}
    )


def modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\nfrom tdcheck.cli import cli\n"
        f"try:\n    cli.main({argv!r}, prog_name='tdcheck')\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(','.join(sorted(sys.modules)))"
    )
    out = run(sys.executable, "-c", code)
    return set(out.stderr.strip().split("\n")[-1].split(","))


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["compare", "--help"], ["compare", "--hidden", "0"],
     ["compare", "--format", "xml"], ["compare", "--atol", "1"]],
)  # fmt: skip
def test_cheap_paths_never_import_tensorflow(argv):
    modules = modules_after(argv)
    assert "click" in modules  # the probe itself worked
    assert "tensorflow" not in modules
    assert "keras" not in modules
    assert "numpy" not in modules  # validation runs before the numerics are imported


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="console script not installed")
def test_console_script_json_run_has_clean_streams():
    proc = run(SCRIPT, "compare", "--format", "json", "--variants", "dense,time-distributed,conv1d")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no TensorFlow log noise
    doc = json.loads(proc.stdout)
    assert doc["total_params"] == 236
    assert doc["passed"] is True


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="console script not installed")
def test_console_script_errors_are_one_line_without_traceback():
    proc = run(SCRIPT, "compare", "--device", "gpu", "--quiet")
    if proc.returncode == 0:
        pytest.skip("a GPU is visible")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_python_dash_m_with_no_color_and_narrow_pipe():
    proc = run(sys.executable, "-m", "tdcheck", "compare", env={"NO_COLOR": "1", "COLUMNS": "60"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "\x1b[" not in proc.stdout
    lines = proc.stdout.splitlines()
    # Tables (indented) fit $COLUMNS; prose is never hard-wrapped when piped (grep-able).
    assert max(len(line) for line in lines if line.startswith(" ")) <= 60
    assert " time-distributed vs dense" in lines  # stacked: the pair on its own line
    verdict = [line for line in lines if line.startswith("EQUIVALENT")]
    assert len(verdict) == 1 and verdict[0].endswith("(7 comparisons passed)")


def test_python_dash_m_usage_error_exit_code():
    proc = run(sys.executable, "-m", "tdcheck", "compare", "--units", "0")
    assert proc.returncode == 2
    assert proc.stderr == "tdcheck: error: --units: must be > 0 (got 0)\n"


def test_failing_run_exits_1_with_a_complete_report(tmp_path):
    # The console entry point skips the interpreter's teardown after TensorFlow loads:
    # the report and the output file must still be complete.
    out = tmp_path / "report.md"
    proc = run(sys.executable, "-m", "tdcheck", "compare", "--weights", "independent",
               "--initializer", "he_normal", "--format", "json", "--output", str(out))  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["passed"] is False
    assert out.read_text().startswith("## tdcheck compare")
    assert out.read_text().rstrip().endswith("only constant initializers can agree")
