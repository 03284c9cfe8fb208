"""Time `tdcheck scan` on a ~10 MB .keras file against keras.models.load_model plus a layer walk.

Issue 8 asks for at most 0.3 s. Both sides run as fresh processes (what a user or a CI step
pays, interpreter start included), alternating, medians over the rounds; the in-process
time of tdcheck.scan() alone is reported too.

    python benchmarks/scan_speed.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import alternate, summary

WALK = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
def walk(layers, path):
    found = []
    for layer in layers:
        if type(layer).__name__ == "TimeDistributed":
            found.append(f"{path}/{layer.name}")
        elif hasattr(layer, "layers"):
            found += walk(layer.layers, f"{path}/{layer.name}")
    return found
model = keras.models.load_model(sys.argv[1], compile=False)
print(walk(model.layers, model.name))
"""


def build(path: str) -> None:
    """Input((None, 64)) -> 5 x LSTM(256) -> 3 TimeDistributed(Dense) heads: about 10 MB."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    x = keras.Input((None, 64), name="features")
    h = x
    for i in range(5):
        h = keras.layers.LSTM(256, return_sequences=True, name=f"lstm_{i}")(h)
    heads = [keras.layers.TimeDistributed(keras.layers.Dense(16), name=f"head_{i}")(h)
             for i in range(3)]  # fmt: skip
    keras.Model(x, heads, name="big").save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="tdcheck-scan-")
    path = os.path.join(folder, "big.keras")
    build(path)
    size = os.path.getsize(path)
    tdcheck = shutil.which("tdcheck") or str(Path(sys.executable).with_name("tdcheck"))
    times = alternate(
        {"scan": [tdcheck, "scan", path], "load_model": [sys.executable, "-c", WALK, path]},
        args.rounds,
    )
    from tdcheck.commands.scan import scan

    inproc = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        scan(path)
        inproc.append(time.perf_counter() - start)
    shutil.rmtree(folder)

    print(f"file: {size / 1e6:.1f} MB, {args.rounds} rounds, medians (min-max)")
    for name, values in times.items():
        low, median, high = summary(values)
        print(f"{name:>11}: {median:.3f} s ({low:.3f}-{high:.3f})")
    print(f"scan in-process: {statistics.median(inproc) * 1000:.1f} ms")
    ratio = statistics.median(times["scan"]) / statistics.median(times["load_model"])
    print(f"ratio scan / load_model+walk: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
