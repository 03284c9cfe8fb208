"""The statistical rule on healthy heads across backends: every FAIL here would be false.

4 dtypes (bfloat16, float16, mixed_float16, float32) x lstm/gru/none x two sizes (F16 H64 T32
B8, F96 H512 T64 B16; no trunk: F512) x units 8/64 x glorot_uniform/he_normal heads x
linear/sigmoid, variants dense, time-distributed and einsum, random input and random-normal
biases: 192 configurations per backend. One JSON line per configuration (its verdict, the
probed accumulator, the largest statistical margin, the failed comparisons), then a summary.

    KERAS_BACKEND=jax python benchmarks/statistical_grid.py jax > jax.jsonl
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections import defaultdict

import tdcheck

DTYPES = ("bfloat16", "float16", "mixed_float16", "float32")
SIZES = ((16, 64, 32, 8), (96, 512, 64, 16))  # features, hidden, seq, batch


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "tensorflow"
    largest: dict[str, float] = defaultdict(float)
    runs = fails = 0
    for dtype, rnn, size, units, init, act in itertools.product(
        DTYPES, ("lstm", "gru", "none"), SIZES, (8, 64), ("glorot_uniform", "he_normal"),
        ("linear", "sigmoid"),
    ):  # fmt: skip
        f, h, t, b = size
        if rnn == "none" and h == 512:
            f = 512
        start = time.perf_counter()
        r = tdcheck.compare(backend=backend, dtype=dtype, rnn=rnn, features=f, hidden=h, seq=t,
                            batch=b, units=units, input="random", initializer=init,
                            bias_initializer="random_normal", activation=act,
                            variants="dense,time-distributed,einsum")  # fmt: skip
        stat = max((c.stats.margin for c in r.comparisons if c.stats.rule == "statistical"),
                   default=0.0)  # fmt: skip
        largest[dtype] = max(largest[dtype], stat)
        failed = [f"{c.label} {c.stats.rule} {c.stats.margin:.3g}" for c in r.failures]
        runs += 1
        fails += bool(failed)
        line = dict(backend=backend, dtype=dtype, rnn=rnn, size=[f, h, t, b], units=units,
                    init=init, act=act, passed=r.passed, statistical=stat, failed=failed,
                    accumulation=r.environment.get("accumulation"),
                    seconds=round(time.perf_counter() - start, 1))  # fmt: skip
        print(json.dumps(line), flush=True)
    print(f"{backend}: {runs} configurations, {fails} failed; largest statistical margin "
          + ", ".join(f"{k} {v:.2g}" for k, v in largest.items()), file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
