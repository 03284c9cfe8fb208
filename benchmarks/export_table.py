"""Re-measure docs/deploy.md's tables: exported models with TimeDistributed, right or wrong.

Table 1 is issue 16's: ``Input((None, 4)) -> LSTM(8) -> TimeDistributed(Dense(3))`` exported
with plain ``model.export()`` (SavedModel, ONNX, LiteRT), the same model written with
``Dense``, and ``tdcheck export``, each run at five batch/length shapes. Table 2: the
issue's three models (tagger, nested-Sequential forecaster, TimeDistributed(Conv2D) video
model), plain export vs ``tdcheck export``, with the artifact's size, export, load and
first-call times.

Every artifact is loaded here with its runtime directly (``tf.saved_model.load`` and
the ``serving_default`` signature, ``onnxruntime.InferenceSession``, the LiteRT
interpreter), not through tdcheck, and judged against the Keras model's eager call.

    flock /tmp/bench.lock python benchmarks/export_table.py            # print the tables
    flock /tmp/bench.lock python benchmarks/export_table.py --write    # and update docs/deploy.md
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import export_models  # noqa: E402  (tests/export_models.py: the models)

import tdcheck  # noqa: E402
from tdcheck.engines.artifacts import error_line, write_artifact  # noqa: E402
from tdcheck.engines.tensorflow import load_tensorflow, quiet  # noqa: E402

SHAPES = [(3, 5), (3, 11), (1, 4), (5, 2), (4, 4)]  # the columns
MARK = "export-table"


def inputs(name: str, batch: int, seq: int) -> np.ndarray:
    rng = np.random.default_rng(batch * 100 + seq)
    if name == "tagger":
        return rng.integers(1, 20, size=(batch, seq)).astype("int32")
    if name == "video":
        return rng.standard_normal((batch, seq, 6, 6, 1)).astype("float32")
    return rng.standard_normal((batch, seq, export_models.FEATURES)).astype("float32")


def runner(path: str, fmt: str) -> Any:
    """A function running the artifact with its own runtime, loaded directly."""
    tf, _ = load_tensorflow()
    if fmt == "savedmodel":
        serve = tf.saved_model.load(path).signatures["serving_default"]
        (name,) = serve.structured_input_signature[1]
        return lambda x: serve(**{name: tf.constant(x)})["output_0"].numpy()
    if fmt == "onnx":
        import onnxruntime

        onnxruntime.set_default_logger_severity(4)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)

    def run(x: np.ndarray) -> np.ndarray:
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))

    return run


def cell(run: Any, model: Any, x: np.ndarray) -> tuple[str, bool]:
    want = np.asarray(model(x, training=False))
    try:
        with quiet():
            got = run(x)
    except Exception as exc:
        if "Select TensorFlow op" in str(exc):
            return "raises: needs Flex (select TF ops)", False
        return f"raises: {error_line(exc)[:70]}", False
    if got.shape != want.shape:
        return f"{tuple(got.shape)} wrong", False
    diff = float(np.max(np.abs(got - want)))
    return ("right" if diff <= 1e-5 + 1.3e-6 * float(np.max(np.abs(want))) else
            f"wrong values ({diff:.2g})"), diff <= 1e-5  # fmt: skip


def row(label: str, path: str, fmt: str, model: Any, name: str) -> list[str]:
    try:
        run = runner(path, fmt)
    except Exception as exc:
        return [label] + [f"cannot load: {str(exc).splitlines()[0][:50]}"] * len(SHAPES)
    return [label] + [cell(run, model, inputs(name, b, s))[0] for b, s in SHAPES]


def suffix(fmt: str) -> str:
    return "" if fmt == "savedmodel" else "." + fmt


def table_one(keras: Any, folder: str, formats: list[str]) -> list[str]:
    model = export_models.lstm(keras)
    dense = keras.Model(model.input, keras.layers.Dense(3, name="dense")(model.layers[1].output))
    dense.get_layer("dense").set_weights(model.get_layer("td").get_weights())
    src = os.path.join(folder, "lstm.keras")
    model.save(src)
    calls = {"savedmodel": "`model.export(dir)` SavedModel, `serve(x)`",
             "onnx": '`model.export("m.onnx", format="onnx")`, onnxruntime',
             "tflite": '`model.export("m.tflite", format="litert")`, LiteRT'}  # fmt: skip
    rows = []
    for fmt in formats:
        path = os.path.join(folder, "plain" + suffix(fmt))
        write_artifact(model, path, fmt)
        rows.append(row(calls[fmt], path, fmt, model, "lstm"))
    for fmt in formats:
        path = os.path.join(folder, "dense" + suffix(fmt))
        write_artifact(dense, path, fmt)
        rows.append(row(f"the same model written with `Dense`, {fmt}", path, fmt, model, "lstm"))
    for fmt in formats:
        path = os.path.join(folder, "tdcheck" + suffix(fmt))
        try:
            result = tdcheck.export(src, path, plain=False)
        except tdcheck.TdcheckError as exc:
            rows.append([f"`tdcheck export IN m{suffix(fmt) or '/'}`"]
                        + [f"exit {exc.exit_code}: not written (Flex)"] * len(SHAPES))  # fmt: skip
            continue
        rows.append(row(f"`tdcheck export IN m{suffix(fmt) or '/'}` (exit {result.exit_code})",
                        path, fmt, model, "lstm"))  # fmt: skip
    head = "| artifact | " + " | ".join(f"batch {b}, seq {s}" for b, s in SHAPES) + " |"
    return [head, "|---" * (len(SHAPES) + 1) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def table_two(keras: Any, folder: str, formats: list[str]) -> list[str]:
    out = [
        "| model | format | plain `model.export()` | `tdcheck export` | what it did | "
        "size | export | load | first call |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for name in ("tagger", "forecaster", "video"):
        model = export_models.BUILDERS[name](keras)
        src = os.path.join(folder, f"{name}.keras")
        model.save(src)
        for fmt in formats + ["tflite"] * (name == "video"):  # no LSTM: LiteRT built-ins
            plain = os.path.join(folder, f"{name}_plain{suffix(fmt)}")
            write_artifact(model, plain, fmt)
            ok = [cell(runner(plain, fmt), model, inputs(name, b, s))[1] for b, s in SHAPES]
            mine = os.path.join(folder, f"{name}_tdcheck{suffix(fmt)}")
            start = time.perf_counter()
            try:
                result = tdcheck.export(src, mine, plain=False)
            except tdcheck.TdcheckError as exc:
                out.append(f"| {name} | {fmt} | wrong on {ok.count(False)} of {len(SHAPES)} | "
                           f"exit {exc.exit_code}: {exc.message.split(': ', 2)[-1][:60]} | | "
                           "| | | |")  # fmt: skip
                continue
            export_s = time.perf_counter() - start
            right = [cell(runner(mine, fmt), model, inputs(name, b, s))[1] for b, s in SHAPES]
            did = ", ".join(
                [f"rewrote {len(result.replaced)}"] * bool(result.replaced)
                + [f"folded {len(result.folded)}"] * bool(result.folded)
            )
            a = result.artifact
            out.append(
                f"| {name} | {fmt} | wrong on {ok.count(False)} of {len(SHAPES)} | "
                f"right on {right.count(True)} of {len(SHAPES)} (exit {result.exit_code}) | "
                f"{did} | {a['size_bytes'] / 1024:.0f} KiB | {export_s:.1f} s | "
                f"{a['load_s'] * 1000:.0f} ms | {a['first_call_s'] * 1000:.1f} ms |"
            )
    return out


def environment() -> str:
    import platform

    tf, keras = load_tensorflow()
    parts = [f"TensorFlow {tf.__version__}", f"Keras {keras.__version__}"]
    for module in ("onnxruntime", "tf2onnx", "ai_edge_litert"):
        try:
            mod = __import__(module)
            parts.append(f"{module} {getattr(mod, '__version__', '?')}")
        except ImportError:
            pass
    return ", ".join(parts) + f", {platform.machine()} CPU, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/deploy.md")
    args = parser.parse_args()
    _, keras = load_tensorflow()
    formats = ["savedmodel"]
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401

        formats.append("onnx")
    except ImportError:
        pass
    folder = tempfile.mkdtemp(prefix="tdcheck-export-table-")
    try:
        with quiet():
            one = table_one(keras, folder, [*formats, "tflite"])
            two = table_two(keras, folder, formats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = "\n".join([*one, "", *two, "", f"(measured with `python benchmarks/export_table.py`"
                      f" on {environment()})"])  # fmt: skip
    print(text)
    if args.write:
        doc = ROOT / "docs" / "deploy.md"
        content = doc.read_text()
        start, end = f"<!-- {MARK} -->", f"<!-- /{MARK} -->"
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        doc.write_text(f"{head}{start}\n{text}\n{end}{tail}")


if __name__ == "__main__":
    main()
