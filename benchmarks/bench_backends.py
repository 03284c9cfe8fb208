"""TimeDistributed(Dense) against Dense per backend: `tdcheck bench --backend B` in rounds.

Each round runs one `tdcheck bench` per backend (the order alternates between rounds), each
timing dense and time-distributed at seq 10/100/1000 (batch 32, hidden 64, units 16) in the
backend's modes (eager and its compiled mode). Within a run every ratio is a median of calls
against dense's median in the same cell; this script prints, per backend, mode and length, the
median over the rounds of those ratios and of dense's and time-distributed's medians, with the
range of the ratio.

    python benchmarks/bench_backends.py --backends jax --rounds 3
    python benchmarks/bench_backends.py --backends tensorflow,jax --modes eager --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

COMPILED = {"tensorflow": "graph", "jax": "jit", "torch": None}


def run_bench(tdcheck: str, backend: str, modes: list[str], args: argparse.Namespace) -> Any:
    argv = [
        tdcheck, "bench", "--backend", backend, "--seq", args.seq, "--batch", "32",
        "--hidden", "64", "--units", "16", "--variants", "dense,time-distributed",
        "--mode", ",".join(modes), "--repeats", str(args.repeats), "--warmup", "3",
        "--format", "json",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def modes_of(backend: str, wanted: str) -> list[str]:
    if wanted != "auto":
        return wanted.split(",")
    compiled = COMPILED[backend]
    return ["eager", compiled] if compiled else ["eager"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax")
    parser.add_argument("--modes", default="auto", help="comma list, or auto: eager + compiled")
    parser.add_argument("--seq", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    tdcheck = shutil.which("tdcheck") or str(Path(sys.executable).with_name("tdcheck"))
    backends = args.backends.split(",")
    # (backend, mode, seq) -> per round (dense median, TD median, TD first call, ratio, = dense)
    found: dict[tuple[str, str, int], list[tuple[float, float, float, float, Any]]] = {}
    versions: dict[str, str] = {}
    for r in range(args.rounds):
        for backend in backends if r % 2 == 0 else backends[::-1]:
            doc = run_bench(tdcheck, backend, modes_of(backend, args.modes), args)
            env = doc["environment"]
            versions[backend] = f"{backend} {env.get(backend)}, Keras {env['keras']}"
            rows = {(x["variant"], x["mode"], x["seq"]): x for x in doc["results"]}
            for (variant, mode, seq), td in rows.items():
                if variant != "time-distributed" or td["median_s"] is None:
                    continue
                dense = rows[("dense", mode, seq)]
                found.setdefault((backend, mode, seq), []).append(
                    (dense["median_s"], td["median_s"], td["trace_s"], td["ratio_to_dense"],
                     td["matches_dense"])
                )  # fmt: skip
            print(f"round {r + 1}/{args.rounds} {backend} done", file=sys.stderr)
    print("; ".join(versions.values()))
    print("| backend | mode | seq | dense | time-distributed | TD / dense (range) | TD first call "
          "| TD = dense |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for (backend, mode, seq), items in found.items():
        med = [statistics.median(col) for col in list(zip(*items, strict=True))[:4]]
        ratios = [i[3] for i in items]
        same = "yes" if all(i[4] for i in items) else "NO"
        print(f"| {backend} | {mode} | {seq} | {med[0] * 1e3:.3g} ms | {med[1] * 1e3:.3g} ms | "
              f"{med[3]:.3g} ({min(ratios):.3g}–{max(ratios):.3g}) | {med[2] * 1e3:.3g} ms "
              f"| {same} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
