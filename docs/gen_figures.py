"""Regenerate the figures quoted in docs/ulp.md, guide.md, models.md and README.md, or check them.

python docs/gen_figures.py            # rewrite the marked regions
python docs/gen_figures.py --check    # exit 1 if a region differs from what the code gives now
python docs/gen_figures.py --survey   # also rerun benchmarks/ulp_survey.py's float64 grid (minutes)

Each figure lives between ``<!-- figures:NAME -->`` and ``<!-- /figures -->`` and records the
machine it was measured on. Kernel choices (and so ULP-level differences) depend on the CPU
and the TensorFlow build, so the drift test compares only where its environment matches the
recorded one, and skips elsewhere.
"""

from __future__ import annotations

import atexit
import functools
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REGION = re.compile(r"(<!-- figures:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)",
                    re.DOTALL)  # fmt: skip
FILES = ("ulp.md", "guide.md", "models.md", "../README.md")


def environment_line() -> str:
    import numpy as np

    from tdcheck.engines.tensorflow import load_tensorflow

    tf, keras = load_tensorflow()
    return (
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}, "
        f"{cpu_model()}, {os.cpu_count()} CPUs"
    )


def cpu_model() -> str:
    """The CPU's model name (its kernels decide the last bits), or the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.machine()


def _stats(result, a: str, b: str):
    return next(c.stats for c in result.comparisons if (c.a, c.b) == (a, b))


def seed_figure() -> str:
    """The seed's configuration, ``tdcheck compare`` with every default."""
    from tdcheck import compare
    from tdcheck.core.result import fmt

    r = compare()
    td = _stats(r, "time-distributed", "dense")
    oracle = [c.stats for c in r.comparisons if c.b == "oracle" and c.a != "trunk"]
    same = (
        "**bitwise identical**"
        if td.bitwise_equal
        else (f"**not bitwise identical** ({td.max_ulp} ULP, {fmt(td.max_abs_diff)})")
    )
    return (
        f"- The seed's configuration (`tdcheck compare`, seed 0): `time-distributed` vs `dense`\n"
        f"  {same}; both agree with the float64 oracle to "
        f"{fmt(max(s.max_abs_diff for s in oracle))} ({max(s.max_ulp for s in oracle)} ULP).\n"
    )


GELU_CASE = {"dtype": "float64", "activation": "gelu", "initializer": "glorot_uniform",
             "input": "random", "hidden": 16, "seq": 8, "batch": 4, "units": 8}  # fmt: skip


def gelu_figure() -> str:
    """float64 gelu against the oracle: the default model, and one with larger pre-activations."""
    from tdcheck import compare
    from tdcheck.core.result import fmt

    small = compare(dtype="float64", activation="gelu")
    large = compare(**GELU_CASE)

    def heads(r) -> list:
        return [c.stats for c in r.comparisons if c.b == "oracle" and c.a != "trunk"]

    def worst(r) -> str:
        return fmt(max(s.max_abs_diff for s in heads(r)))

    def verdict(r) -> str:
        passed = all(s.passed for s in heads(r))
        return f"{'pass' if passed else 'fail'} (margin {fmt(max(s.margin for s in heads(r)))})"

    flags = " ".join(f"--{k} {v}" for k, v in GELU_CASE.items())
    return (
        f"Known limit: TensorFlow's float64 `erf` (behind exact `gelu`) is less accurate than\n"
        f"float64 rounding. With the default model (`--dtype float64 --activation gelu`) the\n"
        f"variants differ from the oracle by {worst(small)} and "
        f"{verdict(small)}; with larger pre-activations\n"
        f"(`{flags}`)\n"
        f"they differ from it by {worst(large)} and {verdict(large)} against their float64\n"
        f"error bound (docs/checks.md).\n"
        f"That is a finding about TensorFlow, reported as such.\n"
    )


def survey_figure() -> str:
    """benchmarks/ulp_survey.py's float64 grid: pairs not bitwise identical, and by how much."""
    import itertools

    from tdcheck import compare
    from tdcheck.core.result import fmt

    grid = list(itertools.product([5, 16, 64], [3, 8, 32], [1, 4], [2, 8]))
    differ = []
    for hidden, seq, batch, units in grid:
        r = compare(dtype="float64", hidden=hidden, seq=seq, batch=batch, units=units,
                    initializer="glorot_uniform", input="random", oracle=False,
                    variants="dense,time-distributed,conv1d,einsum")  # fmt: skip
        differ += [c.stats for c in r.comparisons if not c.stats.bitwise_equal]
    if not differ:
        return f"- float64, {len(grid)} configurations, all four variants: all bitwise identical.\n"
    ulps = [s.max_ulp for s in differ]
    return (
        f"- float64, {len(grid)} configurations (hidden 5/16/64, seq 3/8/32, batch 1/4, units "
        f"2/8),\n  all four variants: {len(differ)} pairs not bitwise identical, "
        f"{min(ulps)} to {max(ulps)} ULP, at most {fmt(max(s.max_abs_diff for s in differ))} "
        f"absolute.\n"
    )


def readme_example() -> str:
    """The README's example: ``tdcheck compare --hidden 5 --seq 3`` piped, 80 columns."""
    from click.testing import CliRunner

    from tdcheck.cli import cli

    args = ["compare", "--hidden", "5", "--seq", "3"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80", "NO_COLOR": "1"})
    return f"```text\n$ tdcheck {' '.join(args)}\n{result.stdout}```\n"


@functools.cache
def example_models() -> Path:
    """models.md's two example files, ``model.keras`` and ``video.keras``, in a temporary folder."""
    from tdcheck.engines.tensorflow import load_tensorflow

    _, keras = load_tensorflow()
    layers = keras.layers
    folder = Path(tempfile.mkdtemp(prefix="tdcheck-figures-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    x = keras.Input((None, 8), name="features")
    h = layers.Masking(name="masking")(x)
    h = layers.LSTM(32, return_sequences=True, name="lstm")(h)
    h = layers.TimeDistributed(layers.Dense(16, activation="relu"), name="hidden")(h)
    h = layers.TimeDistributed(layers.Dropout(0.1), name="dropout")(h)
    y = layers.TimeDistributed(layers.Dense(4), name="head")(h)
    keras.Model(x, y, name="tagger").save(folder / "model.keras")
    v = keras.Input((None, 16, 16, 3), name="frames")
    h = layers.TimeDistributed(layers.Conv2D(8, 3), name="conv")(v)
    h = layers.TimeDistributed(layers.Flatten(), name="flatten")(h)
    y = layers.TimeDistributed(layers.Dense(4), name="head")(h)
    keras.Model(v, y, name="video").save(folder / "video.keras")
    return folder


def scan_example(files: list[str], columns: int, show_exit: bool) -> str:
    """``tdcheck scan`` of the example models, piped, at the given width."""
    from click.testing import CliRunner

    from tdcheck.cli import cli

    here = os.getcwd()
    os.chdir(example_models())  # the report names the files as given
    try:
        result = CliRunner().invoke(
            cli, ["scan", *files], env={"COLUMNS": str(columns), "NO_COLOR": "1"}
        )
    finally:
        os.chdir(here)
    tail = f"$ echo $?\n{result.exit_code}\n" if show_exit else ""
    return f"```text\n$ tdcheck scan {' '.join(files)}\n{result.stdout}{tail}```\n"


FIGURES: dict[str, Callable[[], str]] = {
    "seed": seed_figure,
    "gelu": gelu_figure,
    "readme-example": readme_example,
    "readme-scan": lambda: scan_example(["model.keras"], 80, show_exit=False),
    "models-scan": lambda: scan_example(["model.keras", "video.keras"], 100, show_exit=True),
}
SLOW: dict[str, Callable[[], str]] = {"float64-survey": survey_figure}


def regions(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in REGION.finditer(text)}


def recorded_environment(body: str) -> str | None:
    match = re.search(r"^ *\(measured on (.*?)\)\n$", body, re.MULTILINE)
    return match.group(1) if match else None


def render_body(name: str, env: str) -> str:
    make = FIGURES.get(name) or SLOW[name]
    return make() + f"  (measured on {env})\n"


def update(names: set[str]) -> dict[Path, str]:
    """The new text of each doc file, with the named regions regenerated."""
    env = environment_line()
    out = {}
    for filename in FILES:
        path = (DOCS / filename).resolve()
        text = path.read_text()

        def replace(m: re.Match[str]) -> str:
            if m.group("name") not in names:
                return m.group(0)
            return m.group(1) + render_body(m.group("name"), env) + m.group(4)

        out[path] = REGION.sub(replace, text)
    return out


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    names = set(FIGURES) | (set(SLOW) if "--survey" in sys.argv[1:] else set())
    new = update(names)
    if "--check" in sys.argv[1:]:
        stale = [p.name for p, text in new.items() if p.read_text() != text]
        if stale:
            print(f"stale figures in {', '.join(stale)}: run python docs/gen_figures.py",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    for path, text in new.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
