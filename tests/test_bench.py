"""tdcheck bench: method, arithmetic (with an injected clock), output, plot, pre-check."""

from __future__ import annotations

import itertools
import json
import os

import pytest

from tdcheck.cli import cli
from tdcheck.commands.bench import BenchPlan, Timing, apply_ratios, run_bench, time_calls
from tdcheck.core.config import CompareConfig
from tdcheck.engines.base import installed
from tdcheck.errors import ConfigError


def steady_clock(step: float = 0.001):
    """Every call to the clock advances it by ``step``: each timed call lasts exactly step."""
    counter = itertools.count()
    return lambda: next(counter) * step


def test_time_calls_excludes_the_first_call_and_warmups():
    stamps = iter([0.0, 5.0,  # first call: 5 s (tracing)
                   10.0, 10.5, 20.0, 20.25, 30.0, 31.0])  # three timed calls  # fmt: skip
    calls = []
    first, times, last = time_calls(lambda x: calls.append(x), (7,), lambda _: None, repeats=3,
                              warmup=2, clock=lambda: next(stamps))  # fmt: skip
    assert first == 5.0
    assert times == [0.5, 0.25, 1.0]
    assert calls == [7] * 6  # first + 2 warm-ups + 3 timed
    assert last is None  # the last call's result (list.append returns None)


def test_ratios_and_efficiency_from_given_timings():
    def t(variant, times):
        return Timing(variant, "graph", "static", 10, 2, times, 0.0, 2 * 10 * 2 * 5 * 2)

    dense = t("dense", [1.0, 2.0, 9.0])  # median 2
    td = t("time-distributed", [5.0, 6.0, 7.0])  # median 6
    ref = t("matmul", [0.5, 1.0, 1.5])  # median 1
    apply_ratios([dense, td], [ref])
    assert (dense.min_s, dense.median_s, dense.max_s) == (1.0, 2.0, 9.0)
    assert dense.ratio_to_dense == 1.0 and td.ratio_to_dense == 3.0
    assert dense.efficiency == 0.5 and td.efficiency == pytest.approx(1 / 6)
    assert td.throughput == 2 * 10 / 6.0
    assert td.to_dict()["ratio_to_dense"] == 3.0


def plan(**kw):
    base = CompareConfig(hidden=4, variants=("dense", "time-distributed", "conv1d"), input="random")
    options = {"seqs": (2, 4), "batches": (1,), "modes": ("eager", "graph"), "repeats": 3,
               "warmup": 0, **kw}  # fmt: skip
    return BenchPlan(config=base.validated(), **options).validated()


def test_run_bench_structure_with_a_fake_clock():
    result = run_bench(plan(time_dims=("static", "dynamic")), clock=steady_clock())
    doc = result.to_dict()
    # eager: static only (2 cells); graph: static and dynamic (4 cells)
    cells = [(r["mode"], r["time_dim"], r["seq"]) for r in doc["reference"]]
    assert cells == [("eager", "static", 2), ("eager", "static", 4), ("graph", "static", 2),
                     ("graph", "static", 4), ("graph", "dynamic", 2), ("graph", "dynamic", 4)]  # fmt: skip
    assert len(doc["results"]) == 3 * 6
    for r in doc["results"]:
        assert r["min_s"] <= r["median_s"] <= r["max_s"]
        assert r["median_s"] == pytest.approx(0.001)  # the fake clock's step
        assert r["ratio_to_dense"] == pytest.approx(1.0)
        assert r["efficiency"] == pytest.approx(1.0)
        assert r["throughput"] == pytest.approx(r["batch"] * r["seq"] / 0.001)
        assert r["repeats"] == 3
        assert set(r) >= {"variant", "mode", "seq", "batch", "min_s", "median_s", "max_s",
                          "ratio_to_dense", "throughput"}  # fmt: skip
    assert doc["equivalent"] is True
    assert doc["environment"]["cpu_count"] >= 1
    assert {"intra_op_threads", "inter_op_threads", "device_name"} <= set(doc["environment"])
    assert "eager mode always sees a concrete length: it runs static only" in doc["notes"]


def test_real_clock_backward_and_trunk():
    result = run_bench(plan(seqs=(3,), modes=("graph",), backward=True, with_trunk=True))
    doc = result.to_dict()
    assert doc["plan"]["what"] == "trunk + head" and doc["plan"]["backward"] is True
    for r in doc["results"]:
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        assert r["trace_s"] > 0


def test_precheck_flags_non_equivalent_variants(runner):
    result = runner.invoke(cli, ["bench", "--seq", "2", "--batch", "1", "--mode", "eager",
                                 "--repeats", "2", "--warmup", "0", "--weights", "independent",
                                 "--initializer", "he_normal", "--format", "json"])  # fmt: skip
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["equivalent"] is False
    assert doc["equivalence"]["verdict"].startswith("NOT EQUIVALENT")
    assert any("NOT equivalent" in n for n in doc["notes"])


def test_table_bar_chart_and_markdown(runner, tmp_path):
    out = tmp_path / "bench.md"
    result = runner.invoke(cli, ["bench", "--seq", "2,5", "--batch", "2", "--mode", "eager",
                                 "--repeats", "2", "--warmup", "0", "--variants",
                                 "dense,time-distributed", "--output", str(out)],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("tdcheck bench: head only forward, median of 2 calls after 0 warm-ups;")
    assert "pre-check (seq 2, batch 2): equivalent:" in text
    assert "eager static seq=5 batch=2" in text  # a bar chart block
    assert "█" in text and "matmul" in text
    md = out.read_text()
    assert md.startswith("## tdcheck bench:")
    assert "| mode | time | seq | batch | variant |" in md


def test_plot_is_a_png(runner, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    result = runner.invoke(cli, ["bench", "--seq", "2,4", "--batch", "1", "--mode", "eager",
                                 "--repeats", "2", "--warmup", "0", "--plot", str(png),
                                 "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.png"]


def test_plot_without_matplotlib_exits_3(runner, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))  # fmt: skip
    result = runner.invoke(cli, ["bench", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 3
    assert result.stderr == (
        "tdcheck: error: --plot needs matplotlib, which is not installed: "
        "pip install 'matplotlib>=3.7' (or, in a checkout of tdcheck: pip install '.[plot]')\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mode", "jit"],
            "--mode jit: not available on the tensorflow backend; choose from eager, graph, xla",
        ),
        (["--mode", "fast"], "--mode: unknown value 'fast'; choose from eager, graph, xla"),
        (
            ["--backend", "jax", "--mode", "eager,graph"],
            "--mode graph: not available on the jax backend; choose from eager, jit",
        ),
        (
            ["--backend", "torch", "--mode", "jit"],
            "--mode jit: not available on the torch backend; choose from eager",
        ),
        (
            ["--backend", "jax", "--time-dim", "dynamic"],
            "--time-dim dynamic: not available on the jax backend (an unknown length is "
            "TensorFlow's tf.function trace; jax.jit traces each concrete length)",
        ),
        (["--time-dim", "both"], "--time-dim: unknown value 'both'; choose from static, dynamic"),
        (["--repeats", "0"], "--repeats: must be 1..10000 (got 0)"),
        (["--repeats", "10001"], "--repeats: must be 1..10000 (got 10001)"),
        (["--warmup", "1001"], "--warmup: must be 0..1000 (got 1001)"),
        (["--seq", "10,0"], "--seq: sizes must be > 0 (got [10, 0])"),
        (["--variants", "conv1d,einsum"], "--variants: bench needs 'dense' among the variants"),
        (["--plot", "x.svg"], "--plot: 'x.svg' must end in .png"),
        (["--device", "both"], "--device both is for compare; bench one device at a time"),
    ],
)
def test_bench_usage_errors(runner, args, message, monkeypatch):
    def never(*a, **k):
        raise AssertionError("refused too late: the bench started")

    monkeypatch.setattr("tdcheck.commands.bench.bench", never)
    result = runner.invoke(cli, ["bench", *args], env={"KERAS_BACKEND": None})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"tdcheck: error: {message}")


def test_plan_validation_refuses_huge_cells():
    base = CompareConfig(hidden=4096, units=4096).validated()
    with pytest.raises(ConfigError, match=r"over the 4\.0 GiB limit"):
        BenchPlan(config=base, seqs=(100_000,), batches=(64,)).validated()


def test_a_variant_that_cannot_run_is_reported_not_fatal():
    from tdcheck.reports.bench_render import row_cells

    dense = Timing("dense", "xla", "dynamic", 10, 2, [1.0, 1.0], 0.1, 80)
    broken = Timing("time-distributed", "xla", "dynamic", 10, 2, [], 0.0, 80,
                    error="InvalidArgumentError: pfor while loop")  # fmt: skip
    apply_ratios([dense, broken], [])
    assert broken.ratio_to_dense is None and broken.median_s is None
    d = broken.to_dict()
    assert (d["min_s"], d["median_s"], d["throughput"]) == (None, None, None)
    assert d["error"] == "InvalidArgumentError: pfor while loop"
    assert row_cells(d)[4:6] == ["time-distributed", "error"]


def test_each_cell_is_checked_against_dense():
    result = run_bench(plan(seqs=(3,), batches=(2,), modes=("graph",), time_dims=("static",)),
                       clock=steady_clock())  # fmt: skip
    assert [r.matches_dense for r in result.results] == [True, True, True]


def test_dynamic_time_dim_reports_what_keras_really_computes():
    # Keras 3.15's TimeDistributed maps over range(batch) instead of range(seq) on its
    # vectorized_map path; whatever the installed version does, bench must say it.
    import numpy as np

    from tdcheck.engines.tensorflow import load_tensorflow

    tf, keras = load_tensorflow()
    inp = keras.Input((None, 4))
    td = keras.Model(inp, keras.layers.TimeDistributed(keras.layers.Dense(2))(inp))
    fn = tf.function(lambda t: td(t), input_signature=[tf.TensorSpec([None, None, 4])])
    try:
        correct = fn(tf.constant(np.ones((2, 5, 4), "float32"))).shape == (2, 5, 2)
    except Exception:
        correct = False
    result = run_bench(plan(seqs=(5,), batches=(2,), modes=("graph",), time_dims=("dynamic",)),
                       clock=steady_clock())  # fmt: skip
    td_row = next(r for r in result.results if r.variant == "time-distributed")
    if correct:
        assert td_row.matches_dense is True
    else:
        assert td_row.matches_dense is False or td_row.error is not None
        assert any(n.startswith("time-distributed") for n in result.notes)


@pytest.mark.parametrize(
    ("args", "env", "backend", "modes"),
    [
        ([], None, "tensorflow", ("eager", "graph")),
        ([], "jax", "jax", ("eager", "jit")),
        ([], "torch", "torch", ("eager",)),
        (["--backend", "tensorflow"], "jax", "tensorflow", ("eager", "graph")),
        (["--backend", "jax", "--mode", "jit"], None, "jax", ("jit",)),
    ],
)
def test_backend_and_default_modes(runner, monkeypatch, args, env, backend, modes):
    # --backend, else $KERAS_BACKEND, else tensorflow; --mode defaults to eager plus the
    # backend's compiled mode. Nothing runs: the plan is caught before bench starts.
    seen = []

    def fake_bench(plan, on_cell=None):
        seen.append(plan)
        raise SystemExit(0)

    monkeypatch.setattr("tdcheck.commands.bench.bench", fake_bench)
    result = runner.invoke(cli, ["bench", *args], env={"KERAS_BACKEND": env})
    assert result.exit_code == 0, result.output
    assert (seen[0].backend, seen[0].modes) == (backend, modes)


def test_plan_round_trips_through_json():
    from tdcheck.commands.bench import plan_from_dict, plan_to_dict

    base = CompareConfig(hidden=4, variants=("dense", "einsum"), backend="jax", seed=7)
    original = BenchPlan(config=base.validated(), seqs=(2, 5), batches=(3,), modes=("jit",),
                         repeats=4, warmup=1, backward=True, with_trunk=True).validated()  # fmt: skip
    again = plan_from_dict(json.loads(json.dumps(plan_to_dict(original))))
    assert again == original
    assert again.backend == "jax"


JAX_FAKE_CLOCK = """
import itertools, json, sys
from tdcheck.commands.bench import BenchPlan, run_bench
from tdcheck.core.config import CompareConfig
from tdcheck.engines.base import installed
counter = itertools.count()
cfg = CompareConfig(hidden=4, units=2, variants=("dense", "time-distributed"), input="random",
                    backend="jax").validated()
plan = BenchPlan(config=cfg, seqs=(2, 3), batches=(2,), modes=("eager", "jit"), repeats=3,
                 warmup=1).validated()
doc = run_bench(plan, clock=lambda: next(counter) * 0.001).to_dict()
backward = BenchPlan(config=cfg, seqs=(2,), batches=(2,), modes=("eager", "jit"), repeats=2,
                     warmup=0, backward=True).validated()
doc["backward"] = run_bench(backward, clock=lambda: next(counter) * 0.001).to_dict()
doc["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(doc))
"""


@pytest.mark.skipif(not installed("jax"), reason="jax not installed")
def test_jax_bench_in_process_with_a_fake_clock(tmp_path):
    # A fresh process: Keras loads on JAX there (this test process may hold TensorFlow's).
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", JAX_FAKE_CLOCK], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert "tensorflow" not in doc["environment"]
    assert doc["environment"]["backend"] == "jax" and doc["environment"]["jax"]
    assert doc["plan"]["backend"] == "jax"
    assert doc["equivalent"] is True
    cells = [(r["mode"], r["seq"]) for r in doc["reference"]]
    assert cells == [("eager", 2), ("eager", 3), ("jit", 2), ("jit", 3)]
    assert [(r["variant"], r["mode"], r["seq"]) for r in doc["results"]] == [
        (v, m, s) for m, s in cells for v in ("dense", "time-distributed")
    ]
    for r in doc["results"]:
        assert (r["min_s"], r["median_s"], r["max_s"]) == pytest.approx((0.001,) * 3)
        assert r["trace_s"] == pytest.approx(0.001)
        assert r["ratio_to_dense"] == pytest.approx(1.0)
        assert r["efficiency"] == pytest.approx(1.0)
        assert r["repeats"] == 3 and r["matches_dense"] is True and r["error"] is None
    assert doc["notes"] == [
        "jit: jax.jit traces and compiles once per input shape; first call is that cost"
    ]
    # JAX alone: TensorFlow (2-4 s to import) is never loaded for a JAX bench.
    assert doc["tensorflow_imported"] is False
    # --backward: jax.grad (eager) and jax.jit(jax.grad) run; outputs are not checked.
    back = doc["backward"]
    assert back["plan"]["backward"] is True
    assert [(r["variant"], r["mode"]) for r in back["results"]] == [
        ("dense", "eager"), ("time-distributed", "eager"), ("dense", "jit"),
        ("time-distributed", "jit"),
    ]  # fmt: skip
    for r in back["results"]:
        assert r["error"] is None and r["matches_dense"] is None
        assert r["median_s"] == pytest.approx(0.001) and r["ratio_to_dense"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("backend", "modes", "label"),
    [
        pytest.param("jax", ("eager", "jit"), "JAX",
                     marks=pytest.mark.skipif(not installed("jax"), reason="jax not installed")),
        pytest.param("torch", ("eager",), "PyTorch",
                     marks=pytest.mark.skipif(not installed("torch"), reason="no torch")),
    ],
)  # fmt: skip
def test_real_bench_runs_in_a_worker(runner, tf_keras, backend, modes, label):
    # TensorFlow's Keras is loaded in this process: --backend jax|torch must run in a worker.
    result = runner.invoke(cli, ["bench", "--backend", backend, "--seq", "3", "--batch", "2",
                                 "--hidden", "4", "--variants", "dense,time-distributed",
                                 "--repeats", "2", "--warmup", "0", "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert result.stderr == ""
    env = doc["environment"]
    assert env["backend"] == backend and env[backend] and env["keras"].startswith("3.")
    assert doc["equivalence"]["passed"] is True
    assert [(r["variant"], r["mode"]) for r in doc["results"]] == [
        (v, m) for m in modes for v in ("dense", "time-distributed")
    ]
    for r in doc["results"]:
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"] and r["trace_s"] > 0
        assert r["matches_dense"] is True
    from tdcheck.reports.bench_render import headline

    assert f"{label} {env[backend]}, Keras " in headline(doc)


def test_bench_without_its_backend_installed_exits_3(runner, monkeypatch):
    monkeypatch.setattr("tdcheck.engines.base.installed", lambda name: name != "torch")
    result = runner.invoke(cli, ["bench", "--backend", "torch", "--seq", "2"])
    assert result.exit_code == 3
    assert result.stderr == (
        "tdcheck: error: the torch backend needs 'torch', which is not installed; install it: "
        "pip install 'torch>=2.2' (or, in a checkout of tdcheck: pip install '.[torch]')\n"
    )


def _timing_dict(variant, mode="graph", dim="dynamic", seq=10, batch=32, error=None, match=True):
    return {"variant": variant, "mode": mode, "time_dim": dim, "seq": seq, "batch": batch,
            "error": error, "matches_dense": None if error else match}  # fmt: skip


def test_failed_timings_and_the_verdict_line():
    from tdcheck.commands.bench import bench_verdict, failed_results

    results = [
        _timing_dict("dense"),
        _timing_dict("time-distributed", error="InvalidArgumentError: pfor"),
        _timing_dict("conv1d", match=False),
        _timing_dict("dense", seq=100),
        _timing_dict("time-distributed", seq=100),
    ]
    failed = failed_results(results)
    assert [(f["variant"], f["seq"], f["problem"], f["error"]) for f in failed] == [
        ("time-distributed", 10, "raised", "InvalidArgumentError: pfor"),
        ("conv1d", 10, "differs from dense", None),
    ]
    assert bench_verdict(True, results, failed) == (
        "FAILED: 2 of 5 timings did not count: time-distributed raised in graph dynamic "
        "seq=10 batch=32, conv1d differs from dense in graph dynamic seq=10 batch=32"
    )
    assert bench_verdict(False, results[:1], []) == (
        "FAILED: the variants are NOT equivalent (pre-check)"
    )
    assert bench_verdict(True, results[3:], []) == (
        "PASSED: every variant ran and matched dense in all 2 timings"
    )
    many = [_timing_dict("time-distributed", seq=s, error="E") for s in range(1, 7)]
    assert bench_verdict(True, many, failed_results(many)).endswith(
        "seq=4 batch=32 and 2 more (JSON: failed)"
    )


def test_bench_exits_1_when_a_variant_raised_in_a_cell(runner, monkeypatch, tmp_path):
    # The second timed callable of the cell (time-distributed) raises, as Keras 3.15's
    # TimeDistributed does on the dynamic path when batch > seq.
    import tdcheck.commands.bench as bench_module

    real, calls = bench_module.time_calls, itertools.count(1)

    def time_calls(fn, args, sync, **kw):
        if next(calls) == 2:
            raise ValueError("pfor: batch 3 does not match 2 timesteps")
        return real(fn, args, sync, **kw)

    monkeypatch.setattr(bench_module, "time_calls", time_calls)
    out = tmp_path / "bench.json"
    result = runner.invoke(cli, ["bench", "--seq", "2", "--batch", "3", "--mode", "eager",
                                 "--repeats", "2", "--warmup", "0", "--variants",
                                 "dense,time-distributed", "--output", str(out)],
                           env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 1, result.output
    verdict = ("FAILED: 1 of 2 timings did not count: time-distributed raised in eager static "
               "seq=2 batch=3")  # fmt: skip
    assert result.stdout.splitlines()[-1] == verdict
    doc = json.loads(out.read_text())
    assert (doc["passed"], doc["equivalent"], doc["verdict"]) == (False, True, verdict)
    assert doc["failed"] == [{"variant": "time-distributed", "mode": "eager",
                              "time_dim": "static", "seq": 2, "batch": 3, "problem": "raised",
                              "error": "ValueError: pfor: batch 3 does not match 2 timesteps"}]  # fmt: skip


def test_bench_exits_0_with_a_passed_verdict(runner):
    result = runner.invoke(cli, ["bench", "--seq", "2", "--batch", "1", "--mode", "eager",
                                 "--repeats", "2", "--warmup", "0", "--variants",
                                 "dense,conv1d", "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["passed"], doc["failed"]) == (True, [])
    assert doc["verdict"] == "PASSED: every variant ran and matched dense in all 2 timings"
