"""``tdcheck sweep --executor ray``: a local Ray instance of 2 workers (one per module).

The same cases, verdicts and figures as the local sweep, on 2 workers named per case, merging
with a local shard; a worker killed mid-case loses no case; an interrupt writes the partial
report (exit 130) and stops the cluster's work; an address nobody answers on is exit 3, fast.
Every sweep here starts its own actors, which import TensorFlow: each costs seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tdcheck.cli import cli
from tdcheck.commands.sweep import CaseResult, _case_from, _executor_section, plan_sweep
from tdcheck.core.config import CompareConfig

GRID = ["--hidden", "4,8", "--seq", "3,5"]
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance of 2 CPUs for this module; its address for subprocesses."""
    ray = pytest.importorskip("ray")
    import logging

    from tdcheck.engines.ray_cluster import LOCAL_OBJECT_STORE

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, object_store_memory=LOCAL_OBJECT_STORE)  # fmt: skip
    node = ray._private.worker._global_node
    RAYLET[:] = [info.process.pid for info in node.all_processes["raylet"]]
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    RAYLET.clear()


#: The pid of this module's Ray instance's raylet: its actors are its children (pytest -n 2
#: may run another module's Ray instance beside this one).
RAYLET: list[int] = []


def _actor_pids(busy: bool = False) -> list[int]:
    """The pids of this instance's tdcheck actors (``ray::CaseActor...`` titles, children of
    its raylet), only those running a case when ``busy``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent in RAYLET and title.startswith("ray::CaseActor" + (".run" if busy else "")):
            found.append(int(entry.name))
    return found


def _wait_for(predicate, timeout: float = 180.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def _sweep(runner, *args: str) -> tuple[int, dict]:
    result = runner.invoke(cli, ["sweep", *GRID, *args, "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_same_cases_verdicts_and_figures_as_local_on_two_workers_and_merges(
    runner, ray_address, tmp_path
):
    code, on_ray = _sweep(runner, "--shard", "1/2", "--executor", "ray", "--workers", "2")
    assert code == 0
    local_code, local = _sweep(runner, "--shard", "1/2")
    assert local_code == 0
    assert (
        [c["name"] for c in on_ray["cases"]]
        == [c["name"] for c in local["cases"]]
        == [
            "lstm4-f4-u2-s3-b1-float32-dense+time-distributed",
            "lstm8-f4-u2-s3-b1-float32-dense+time-distributed",
        ]
    )
    for ray_case, local_case in zip(on_ray["cases"], local["cases"], strict=True):
        for key in ("index", "status", "verdict", "config", "comparisons", "error", "power"):
            assert ray_case[key] == local_case[key], key  # figures bitwise: the same floats
        assert "worker" not in local_case
    assert on_ray["fingerprint"] == local["fingerprint"]  # the executor is not part of it
    assert on_ray["summary"] == local["summary"] == {
        "total": 2, "passed": 2, "failed": 0, "errored": 0, "not_run": 0,
    }  # fmt: skip
    assert "executor" not in local
    # Two workers, each named in the cases it ran, with this host and a pid of its own.
    workers = {c["worker"]["id"]: c["worker"]["pid"] for c in on_ray["cases"]}
    assert sorted(workers) == ["w1", "w2"] and len(set(workers.values())) == 2
    assert {c["worker"]["host"] for c in on_ray["cases"]} == {socket.gethostname()}
    assert all("versions" not in c["worker"] for c in on_ray["cases"])  # same as the driver
    executor = on_ray["executor"]
    assert executor["name"] == "ray" and executor["findings"] == []
    assert sorted(executor["workers"]) == ["w1", "w2"]
    assert sorted(i for w in executor["workers"].values() for i in w["cases"]) == [0, 2]
    assert executor["driver"]["pid"] == os.getpid()
    # The Ray shard merges with the local run's other shard into the whole sweep.
    (tmp_path / "ray.json").write_text(json.dumps(on_ray))
    local2_code, local2 = _sweep(runner, "--shard", "2/2")
    assert local2_code == 0
    (tmp_path / "local.json").write_text(json.dumps(local2))
    merged = runner.invoke(
        cli, ["merge", str(tmp_path / "ray.json"), str(tmp_path / "local.json"), "--format",
              "json"],
    )  # fmt: skip
    assert merged.exit_code == 0, merged.output
    doc = json.loads(merged.stdout)
    assert doc["complete"] is True and doc["summary"]["passed"] == 4
    assert [c["index"] for c in doc["cases"]] == [0, 1, 2, 3]
    assert [bool(c.get("worker")) for c in doc["cases"]] == [True, False, True, False]


def test_a_worker_killed_mid_case_loses_no_case(runner, ray_address):
    killed: list[int] = []

    def kill_one() -> None:
        pid = _wait_for(lambda: (_actor_pids(busy=True) or [None])[0])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=kill_one, daemon=True)
    thread.start()
    result = runner.invoke(cli, ["sweep", "--hidden", "4,8", "--executor", "ray", "--workers",
                                 "2", "--format", "json"])  # fmt: skip
    thread.join(5)
    assert killed, "no worker was running a case"
    doc = json.loads(result.stdout)
    assert doc["summary"]["total"] == 2 and doc["not_run"] == []  # no case lost
    retried = [c for c in doc["cases"] if c["worker"].get("attempts") == 2]
    assert len(retried) == 1
    case = retried[0]
    assert (
        f"(pid {killed[0]} on {socket.gethostname()}) died mid-case: " in case["worker"]["retried"]
    )
    assert "\n" not in case["worker"]["retried"] and len(case["worker"]["retried"]) < 400
    if case["status"] == "errored":  # its second worker died too (never here: one kill)
        pytest.fail(case["error"])
    assert case["worker"]["pid"] != killed[0]  # it ran again on another worker
    assert result.exit_code == 0 and doc["summary"]["passed"] == 2


def test_interrupt_gives_the_partial_report_exit_130_and_stops_the_work(ray_address):
    """SIGTERM (a CI job cancelled), which Ray's driver would turn into a bare exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tdcheck", "sweep", *GRID, "--executor", "ray", "--ray-address",
         ray_address, "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: _actor_pids(busy=True) or process.poll() is not None)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["passed"] is False
    assert doc["summary"]["total"] + doc["summary"]["not_run"] == 4
    assert doc["not_run"] and all(
        e["reason"] == "not run: the sweep was interrupted" for e in doc["not_run"]
    )
    # stderr holds tdcheck's own line only: no Ray or TensorFlow noise.
    assert err.splitlines() == ["tdcheck: interrupted; the report covers the cases that finished"]
    _wait_for(lambda: not _actor_pids(), timeout=30)  # the actors were killed


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tdcheck", "sweep", *GRID, "--executor", "ray", *args],
        capture_output=True, text=True, env=env or _env(), timeout=120,
    )  # fmt: skip


def test_an_unreachable_cluster_is_exit_3_fast():
    pytest.importorskip("ray")
    port = _closed_port()
    start = time.monotonic()
    done = _run_cli("--ray-address", f"127.0.0.1:{port}")
    assert done.returncode == 3
    assert done.stderr == (
        f"tdcheck: error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused\n"
    )
    assert done.stdout == ""
    assert time.monotonic() - start < 60  # no Ray retry loop of minutes


def test_an_address_that_never_answers_is_exit_3_within_the_timeout():
    """A port that accepts connections but speaks no Ray: Ray alone waits for minutes."""
    pytest.importorskip("ray")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        start = time.monotonic()
        done = _run_cli("--ray-address", f"127.0.0.1:{port}",
                        env={**_env(), "TDCHECK_RAY_TIMEOUT": "3"})  # fmt: skip
    finally:
        server.close()
    assert done.returncode == 3, done.stderr
    assert done.stderr == (
        f"tdcheck: error: the Ray cluster at 127.0.0.1:{port} did not answer within 3 s\n"
    )
    assert time.monotonic() - start < 60


# -- no Ray needed ---------------------------------------------------------------------------


def test_without_ray_the_executor_is_exit_3_with_the_install_line(runner, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))  # fmt: skip
    result = runner.invoke(cli, ["sweep", *GRID, "--executor", "ray"])
    assert result.exit_code == 3
    assert result.stderr == (
        "tdcheck: error: --executor ray needs Ray, which is not installed; install it: "
        "pip install 'ray[default]>=2.9' (or, in a checkout of tdcheck: pip install '.[ray]')\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "--workers: only with --executor ray"),
        (["--ray-address", "auto"], "--ray-address: only with --executor ray"),
        (["--executor", "ray", "--workers", "0"], "--workers: must be 1..4096 (got 0)"),
        (["--executor", "ray", "--ray-address", " "],
         "--ray-address: give HOST:PORT, ray://HOST:PORT or auto"),
    ],
)  # fmt: skip
def test_executor_usage_errors_exit_2(runner, args, message):
    result = runner.invoke(cli, ["sweep", *GRID, *args])
    assert result.exit_code == 2
    assert result.stderr == f"tdcheck: error: {message}\n"


def test_the_cli_does_not_import_ray():
    code = (
        "import sys, contextlib\n"
        "from tdcheck.cli import cli\n"
        "with contextlib.suppress(SystemExit):\n"
        "    cli.main(['sweep', '--help'], prog_name='tdcheck')\n"
        "sys.stderr.write(str(sorted(m for m in sys.modules if m.split('.')[0] == 'ray')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "[]"
    assert "--executor [local|ray]" in done.stdout


def _done(reply: str | None, **worker):
    from types import SimpleNamespace

    return SimpleNamespace(key=0, reply=reply, error="worker w1 died mid-case: x (ran 2 times)",
                           worker={"id": "w1", "host": "h", "pid": 7, **worker}, attempts=2,
                           retried="worker w1 (pid 7 on h) died mid-case: x", seconds=1.5)  # fmt: skip


def test_a_case_records_its_worker_and_the_versions_that_differ_from_the_drivers():
    plan = plan_sweep({"hidden": "4"}, CompareConfig())
    planned = plan.cases[0]
    driver = {"host": "d", "pid": 1, "versions": {"python": "3.11.7", "tensorflow": "2.21.0"}}
    case = CaseResult(0, planned.name, {"hidden": 4}, "passed", 0.25, verdict="same")
    done = _done(json.dumps({"case": case.to_dict(), "environment": {"backend": "tensorflow"}}),
                 versions={"python": "3.11.7", "tensorflow": "2.20.0"})  # fmt: skip
    result, environment = _case_from(done, planned, driver)
    assert environment == {"backend": "tensorflow"}
    assert result.to_dict()["worker"] == {
        "id": "w1", "host": "h", "pid": 7, "versions": {"tensorflow": "2.20.0"}, "attempts": 2,
        "retried": "worker w1 (pid 7 on h) died mid-case: x",
    }  # fmt: skip
    assert (result.status, result.seconds, result.verdict) == ("passed", 0.25, "same")
    # A case whose second worker died too: errored, with the reason and how to reproduce it.
    errored, environment = _case_from(_done(None), planned, driver)
    assert (errored.status, errored.error, errored.seconds) == (
        "errored", "worker w1 died mid-case: x (ran 2 times)", 1.5)  # fmt: skip
    assert errored.reproduce == planned.reproduce and environment == {}


def test_a_heterogeneous_cluster_is_a_finding_naming_which_case_ran_where():
    driver = {"host": "d", "pid": 1, "versions": {"python": "3.11.7", "tensorflow": "2.21.0"}}
    workers = {
        "w2": {"host": "b", "pid": 20, "versions": {"python": "3.11.7", "tensorflow": "2.20.0"}},
        "w1": {"host": "a", "pid": 10, "versions": {"python": "3.11.7", "tensorflow": "2.21.0"}},
    }
    section = _executor_section("the Ray cluster at x:1 (4 CPU, 0 GPU)", driver, workers,
                                {"w1": [2, 0], "w2": [1]})  # fmt: skip
    assert section["findings"] == [
        "the workers run different versions: w1 on a (pid 10: tensorflow 2.21.0) ran cases "
        "0, 2; w2 on b (pid 20: tensorflow 2.20.0) ran cases 1"
    ]
    assert section["workers"]["w2"] == {"host": "b", "pid": 20, "cases": [1],
                                        "versions_differing": {"tensorflow": "2.20.0"}}  # fmt: skip
    same = _executor_section("x", driver, {"w1": workers["w1"]}, {"w1": [0]})
    assert same["findings"] == [] and same["workers"]["w1"]["versions_differing"] == {}


def test_the_reports_say_where_the_cases_ran_the_findings_and_the_retries():
    from tdcheck.reports.sweep_render import executor_lines, render

    doc = {
        "executor": {
            "cluster": "a local Ray instance (2 CPU, 0 GPU)",
            "workers": {"w1": {"host": "vm", "pid": 11, "cases": [0]},
                        "w3": {"host": "vm", "pid": 13, "cases": [1, 2]}},
            "findings": ["the workers run different versions: ..."],
        },
        "cases": [
            {"name": "a", "worker": {"id": "w1"}},
            {"name": "b", "worker": {"id": "w3", "retried": "worker w2 (pid 12 on vm) died "
                                     "mid-case: killed"}},
        ],
    }  # fmt: skip
    assert executor_lines(doc) == [
        "Ray: a local Ray instance (2 CPU, 0 GPU), 2 worker(s): w1 on vm (pid 11) ran 1 "
        "case(s); w3 on vm (pid 13) ran 2 case(s)",
        "finding: the workers run different versions: ...",
        "b: ran again on w3: worker w2 (pid 12 on vm) died mid-case: killed",
    ]
    assert executor_lines({"cases": []}) == []  # a local sweep's report: nothing
    full = {
        "passed": True, "summary": {"total": 0, "passed": 0, "failed": 0, "errored": 0,
                                    "not_run": 0}, "not_run": [], **doc, "cases": [],
    }  # fmt: skip
    assert "### Workers\n\n- Ray: a local Ray instance" in render(full, "markdown")


# -- the pool, with a runner that needs no TensorFlow (its actors start in about a second) ----


class FakeRunner:
    """A stand-in for the sweep's runner: answers at once, or dies (SIGKILL) when told."""

    def __call__(self, request: str) -> str:
        doc = json.loads(request)
        if doc.get("die"):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(doc.get("sleep", 0))
        return json.dumps({"key": doc["key"], "pid": os.getpid()})


def _pool(workers: int = 2):
    import ray

    from tdcheck.runners.ray_executor import RayPool

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    return RayPool(FakeRunner, workers)


def _job(key: int, **request):
    from tdcheck.runners.ray_executor import Job

    return Job(key, f"case{key}", json.dumps({"key": key, **request}))


def test_a_case_whose_worker_dies_twice_is_reported_with_the_reason(ray_address):
    pool = _pool()
    states: list[dict[str, str]] = []
    pool._on_state = lambda s: states.append(dict(s))
    try:
        done = {d.key: d for d in pool.run([_job(0), _job(1, die=True), _job(2)])}
    finally:
        pool.close()
    assert sorted(done) == [0, 1, 2]
    assert [json.loads(done[k].reply)["key"] for k in (0, 2)] == [0, 2]
    dead = done[1]
    assert dead.reply is None and dead.attempts == 2
    assert dead.error.startswith("worker w") and " died mid-case: " in dead.error
    assert dead.error.endswith("(ran 2 times)")
    assert dead.retried.startswith("worker w") and dead.retried != dead.error
    # It ran on two workers, both named (pid and host) in the reasons.
    pids = [re.search(r"\(pid (\d+) on ", text).group(1) for text in (dead.retried, dead.error)]
    assert pids[0] != pids[1]
    assert {int(p) for p in pids} <= {i["pid"] for i in pool.identities.values()}
    assert any(set(s.values()) & {"case0", "case1", "case2"} for s in states)  # progress


def test_closing_the_pool_cancels_what_is_pending_and_kills_the_workers(ray_address):
    pool = _pool()
    jobs = [_job(0, sleep=60), _job(1), _job(2), _job(3, sleep=60)]
    finished = []
    try:
        for done in pool.run(jobs):
            finished.append(done.key)
            assert len(_actor_pids(busy=True)) == 1  # the other worker: on its 60 s case
            break  # --fail-fast: stop at the first result
    finally:
        pool.close()
    assert finished == [1]  # case 0 went first, to the first worker up, and sleeps
    _wait_for(lambda: not _actor_pids(), timeout=30)  # the sleeping case's actor is gone


def test_gpu_cases_on_a_cluster_without_a_gpu_are_exit_3_before_running(runner, ray_address):
    result = runner.invoke(cli, ["sweep", *GRID, "--device", "gpu", "--executor", "ray"])
    assert result.exit_code == 3
    assert result.stderr == (
        "tdcheck: error: 4 case(s) need a GPU (--device gpu or both; e.g. "
        "lstm4-f4-u2-s3-b1-float32-dense+time-distributed) and a local Ray "
        "instance (2 CPU, 0 GPU) has none\n"
    )
    assert _actor_pids() == []


def test_which_cases_ask_for_a_gpu():
    from tdcheck.commands.sweep import needs_gpu

    assert [needs_gpu(CompareConfig(device=d), 0) for d in ("auto", "cpu", "gpu", "both")] == [
        False, False, True, True,
    ]  # fmt: skip
    assert [needs_gpu(CompareConfig(device=d), 1) for d in ("auto", "cpu")] == [True, False]


def test_progress_on_a_terminal_shows_each_workers_state(monkeypatch):
    import io

    from tdcheck.reports import progress

    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("NO_COLOR", "1")
    with progress.progress_reporter(2) as on_case:
        on_case.workers({"w1": "lstm4-f4", "w2": "starting"})
        on_case(CaseResult(0, "lstm4-f4", {}, "passed", 0.1))
        on_case.workers({"w1": "idle", "w2": "lstm8-f4"})
    text = err.getvalue()
    assert "sweep on Ray" in text and "1/2" in text
    assert "w1 lstm4-f4 | w2 starting" in text and "w1 idle | w2 lstm8-f4" in text
    assert progress.worker_line({"w1": "a" * 50, "w2": "idle"}, 30) == (
        "w1 aaaaaaaaa… | w2 idle"  # each state cut to (30 - 3) // 2 = 13 characters
    )


def test_doctests_of_the_runner_and_the_progress_line():
    import doctest

    pytest.importorskip("ray")
    from tdcheck.engines import ray_cluster
    from tdcheck.reports import progress

    for module in (ray_cluster, progress):
        results = doctest.testmod(module)
        assert results.failed == 0 and results.attempted >= 1, module.__name__
