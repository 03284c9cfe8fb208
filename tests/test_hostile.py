"""Hostile inputs and environments: exit 2 (3 for the environment), one line, nothing written.

Each class of the adversarial corpus has a test here; the stream and signal tests use real
processes and options that fail or finish before TensorFlow loads where they can.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.core.inputs import check_npy_header
from tdcheck.errors import ConfigError
from tdcheck.files import atomic_write_text, check_output_path

ENV = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TDCHECK_DEBUG")}


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def one_line_error(result, code, needle):
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("tdcheck: error: ")
    assert result.stderr.count("\n") == 1
    assert needle in result.stderr, result.stderr


# -- sizes and numbers that pass validation but would break later ----------------------------
def _npy_with_header(path, shape, descr="<f8", data=b"\0" * 16):
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(data)


def test_npy_header_claiming_absurd_size_is_refused_before_allocating(tmp_path, runner):
    path = tmp_path / "huge.npy"
    _npy_with_header(path, (10**6, 10**6, 10**6))  # 8e18 bytes claimed, 16 held
    with pytest.raises(ConfigError, match=r"claims shape \(1000000, 1000000, 1000000\) of "
                       r"float64 \(8,000,000,000,000,000,000 bytes\) but holds 16 bytes"):  # fmt: skip
        check_npy_header(str(path))
    one_line_error(run(runner, "compare", "--input", str(path)), 2, "claims shape")


def test_npy_over_max_memory_is_refused_from_its_header(tmp_path, runner):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((1, 100, 1000), np.float32))  # 400 kB on disk, 800 kB as float64
    assert check_npy_header(str(path), max_bytes=10**6) == ((1, 100, 1000), np.dtype("<f4"))
    with pytest.raises(ConfigError, match=r"about 781.2 KiB in memory, over the 97.7 KiB limit"):
        check_npy_header(str(path), max_bytes=100_000)
    one_line_error(
        run(runner, "compare", "--input", str(path), "--max-memory", "100kB"), 2, "--max-memory"
    )


def test_npy_object_header_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npy"
    _npy_with_header(path, (1, 1, 1), descr="|O")
    with pytest.raises(ConfigError, match="holds Python objects; tdcheck never unpickles"):
        check_npy_header(str(path))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seed", "4294967296"], "--seed: must be a whole number 0..4294967295 (got 4294967296)"),
        (["--max-memory", "1e400GiB"], "--max-memory: '1e400GiB' is beyond any machine"),
        (["--max-memory", "2000TiB"], "--max-memory: '2000TiB' is beyond any machine"),
        (["--dtype", "float16", "--initializer", "constant:1e5"],
         "--initializer: 100000 overflows float16 (largest finite 65504)"),
        (["--bias-initializer", "constant:1e39"],
         "--bias-initializer: 1e+39 overflows float32 (largest finite 3.40282e+38)"),
        (["--dtype", "float16", "--initializer", "random_normal:1e6"], "overflows float16"),
        (["--train-steps", "100001"], "--train-steps: must be a whole number 0..100000"),
    ],
)  # fmt: skip
def test_numbers_at_the_edge_of_their_type(runner, args, needle):
    one_line_error(run(runner, "compare", *args), 2, needle)


def test_count_options_have_caps(runner):
    one_line_error(run(runner, "bench", "--repeats", "10001"), 2, "--repeats: must be 1..10000")
    one_line_error(run(runner, "bench", "--warmup", "1001"), 2, "--warmup: must be 0..1000")
    one_line_error(
        run(runner, "sweep", "--max-cases", "1000001"), 2, "--max-cases: must be 1..1000000"
    )


# -- output targets that are not plain files -------------------------------------------------
def test_refused_output_targets_leave_nothing(tmp_path, runner):
    os.chdir(tmp_path)
    readonly = tmp_path / "ro.json"
    readonly.write_text("keep")
    readonly.chmod(0o444)
    (tmp_path / "dir.json").mkdir()
    os.symlink(tmp_path / "same.json", tmp_path / "alias.json")
    cases = [
        (["--output", ""], "--output: the path is empty"),
        (["--output", str(readonly)], "is read-only; remove it or choose another path"),
        (["--output", "dir.json"], "dir.json"),
        (["--output", "same.json", "--junit", "same.json"],
         "--output and --junit name the same file 'same.json'"),
        (["--output", "alias.json", "--junit", "same.json"], "name the same file"),
    ]  # fmt: skip
    before = sorted(os.listdir(tmp_path))
    for args, needle in cases:
        one_line_error(run(runner, "sweep", "--hidden", "3", *args), 2, needle)
    assert sorted(os.listdir(tmp_path)) == before
    assert readonly.read_text() == "keep"


def test_compare_refuses_output_and_save_arrays_on_one_file(tmp_path, runner):
    os.chdir(tmp_path)
    os.symlink(tmp_path / "x.npz", tmp_path / "r.json")
    one_line_error(
        run(runner, "compare", "--output", "r.json", "--save-arrays", "x.npz"), 2, "same file"
    )


def test_devices_and_fifos_are_written_through_never_replaced(tmp_path):
    check_output_path(os.devnull, "--junit")
    atomic_write_text(os.devnull, "report")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    atomic_write_text(str(fifo), "through the pipe")
    reader.join(timeout=10)
    assert received == ["through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temp file left beside it


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    os.symlink(target, link)
    atomic_write_text(str(link), "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    os.symlink(tmp_path / "later.json", dangling)
    atomic_write_text(str(dangling), "made")
    assert dangling.is_symlink() and (tmp_path / "later.json").read_text() == "made"


def test_merge_output_to_dev_null_is_json_through_the_device(tmp_path, runner):
    from tdcheck.cli.options import check_output

    assert check_output(os.devnull) == "json"
    assert check_output(str(tmp_path / "r.md"), junit=os.devnull) == "markdown"


# -- closed or odd standard streams (real processes) -----------------------------------------
def _proc(args, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env or ENV)


def test_closed_stdout_and_stderr_keep_the_exit_code():
    py = f"{sys.executable} -m tdcheck"
    out = _proc(["bash", "-c", f"{py} --version >&-; echo rc=$?"])
    assert out.stdout == "rc=0\n" and out.stderr == ""
    out = _proc(["bash", "-c", f"{py} compare --hidden 0 2>&-; echo rc=$?"])
    assert out.stdout == "rc=2\n"
    out = _proc(["bash", "-c", f"{py} compare --hidden 3 --seq 2 --quiet >&- 2>&-; echo rc=$?"])
    assert out.stdout == "rc=0\n"  # a passing run with both streams closed still passes


@pytest.mark.parametrize(
    "args", [["compare", "--help"], ["compare", "--hidden", "3", "--seq", "2", "--grad"]]
)
def test_reader_closing_the_pipe_early_is_quiet(args):
    # --help: Click writes; the compare run: tdcheck's report, after TensorFlow has loaded
    proc = subprocess.Popen([sys.executable, "-m", "tdcheck", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()  # the reader is gone before tdcheck writes
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert stderr == ""  # no "Exception ignored ... BrokenPipeError"


def test_ascii_only_stdout_gets_stand_ins():
    proc = _proc([sys.executable, "-m", "tdcheck", "compare", "--hidden", "3", "--seq", "2"],
                 env={**ENV, "PYTHONIOENCODING": "ascii", "COLUMNS": "80"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.isascii()
    assert " ------" in proc.stdout  # the table rules, in ASCII
    assert any(line.startswith("EQUIVALENT") for line in proc.stdout.splitlines())


# -- interrupts ----------------------------------------------------------------------------
def _interrupt_while_tensorflow_loads(proc, signum=signal.SIGINT):
    """Signal the process once it has mapped TensorFlow's first library (the import then
    takes seconds more), or after 2 s where /proc is missing."""
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{proc.pid}/maps") and time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/maps") as handle:
            if "tensorflow" in handle.read() or proc.poll() is not None:
                break
        time.sleep(0.02)
    else:
        time.sleep(2)
    proc.send_signal(signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_while_tensorflow_loads_gives_the_partial_sweep_report(tmp_path, signum):
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdcheck", "sweep", "--hidden", "3,4", "--seq", "2",
         "--format", "json", "--output", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    _interrupt_while_tensorflow_loads(proc, signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.endswith("tdcheck: interrupted; the report covers the cases that finished\n")
    import json

    doc = json.loads(stdout)
    assert doc["interrupted"] is True and doc["passed"] is False
    assert json.loads(report.read_text())["interrupted"] is True


def test_sigint_during_compare_is_one_line_130():
    proc = subprocess.Popen([sys.executable, "-m", "tdcheck", "compare", "--hidden", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    _interrupt_while_tensorflow_loads(proc)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert stdout == ""
    assert stderr == "tdcheck: error: interrupted\n"


def test_absurd_memory_estimates_read_as_numbers():
    from tdcheck.core.config import format_bytes

    assert format_bytes(3 * 1024**3) == "3.0 GiB"
    assert format_bytes(5 * 1024**5) == "5.0 PiB"
    assert format_bytes(1e30) == "8.88e+14 PiB"


def test_shell_completion_as_documented():
    script = _proc([sys.executable, "-c", "from tdcheck.cli import main; main()"],
                   env={**ENV, "_TDCHECK_COMPLETE": "bash_source"})  # fmt: skip
    assert "_tdcheck_completion()" in script.stdout
    words = _proc([sys.executable, "-c", "from tdcheck.cli import main; main()"],
                  env={**ENV, "_TDCHECK_COMPLETE": "bash_complete",
                       "COMP_WORDS": "tdcheck compare --rnn ", "COMP_CWORD": "3"})  # fmt: skip
    assert words.stdout.split() == ["plain,lstm", "plain,gru", "plain,simple-rnn", "plain,none"]


def test_dev_stdout_redirected_to_a_file_keeps_the_report_and_the_file(tmp_path):
    # `--junit /dev/stdout > log`: written through the process's own descriptor, in order,
    # neither truncating `log` nor renaming over it.
    log = tmp_path / "log.txt"
    code = ("import sys\nfrom tdcheck.files import atomic_write_text, check_output_path\n"
            "print('report'); check_output_path('/dev/stdout', '--junit')\n"
            "atomic_write_text('/dev/stdout', '<junit/>\\n'); print('verdict')")  # fmt: skip
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, check=True, env=ENV)
    assert log.read_text() == "report\n<junit/>\nverdict\n"
    assert sorted(os.listdir(tmp_path)) == ["log.txt"]
