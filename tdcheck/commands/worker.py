"""A worker process that runs comparisons on one engine: ``python -m tdcheck.commands.worker``.

Keras picks its backend once, at import, so each backend runs in a process of its own, started
with ``KERAS_BACKEND`` set (:class:`tdcheck.commands.backends.Worker`). The worker reads one
request per line on standard input: ``{"dir": PATH}``, where the directory holds
``request.json`` (``{"engine": NAME, "config": {...}}``), ``input.npy`` and, optionally,
``weights.npz`` (initial weights the model takes instead of its own). It runs the
comparison, writes ``result.json`` (the report document) and ``arrays.npz`` there, and answers
one line, ``{"ok": true}`` or ``{"ok": false, "error": TEXT, "exit_code": N}``. Arrays travel as
``.npy``/``.npz`` read with ``allow_pickle=False``; nothing is pickled. Everything else the
frameworks print goes to standard error. The worker stays up for further requests (a sweep
reuses it) until standard input closes. A bench request (``tdcheck bench --backend``) holds
``{"engine": NAME, "bench": PLAN}`` (:func:`tdcheck.commands.bench.plan_to_dict`) and gets only
``result.json``, the bench report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tdcheck.core.config import CompareConfig
from tdcheck.errors import EXIT_ENVIRONMENT, TdcheckError

#: Arrays whose dtype NumPy cannot store without pickling travel as float32; the result
#: names them so the parent casts them back.
CAST_KEY = "float32_from"


def config_from_dict(doc: dict[str, Any]) -> CompareConfig:
    """A :class:`CompareConfig` from its :meth:`~CompareConfig.to_dict` (lists to tuples)."""
    names = {f.name for f in dataclasses.fields(CompareConfig)}
    values = {k: v for k, v in doc.items() if k in names}
    for key in ("variants", "lengths", "backends"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return CompareConfig(**values)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Save arrays without pickling; non-native dtypes (bfloat16) as float32.

    Returns ``{key: original dtype}`` of the arrays saved as float32.
    """
    cast: dict[str, str] = {}
    plain: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind not in "biufc":
            cast[key] = str(value.dtype)
            value = value.astype(np.float32)
        plain[key] = value
    np.savez(path, **plain)  # type: ignore[arg-type]
    return cast


def handle(directory: Path, sessions: dict[str, Any]) -> None:
    """Run one request (see the module docstring)."""
    from tdcheck.commands.compare import Session

    request = json.loads((directory / "request.json").read_text(encoding="utf-8"))
    engine = request["engine"]
    if "bench" in request:  # tdcheck bench: the plan in, the report document out
        from tdcheck.commands.bench import plan_from_dict, run_bench

        doc = run_bench(plan_from_dict(request["bench"])).to_dict()
        (directory / "result.json").write_text(json.dumps(doc), encoding="utf-8")
        return
    cfg = config_from_dict(request["config"])
    x = np.load(directory / "input.npy", allow_pickle=False)
    if engine not in sessions:
        sessions[engine] = Session(engine=engine)
    weights = None
    if (directory / "weights.npz").exists():
        with np.load(directory / "weights.npz", allow_pickle=False) as archive:
            weights = {key: archive[key] for key in archive.files}
    sessions[engine].use_weights(weights)
    run = sessions[engine].run(cfg, x)
    doc = run.to_dict()
    doc[CAST_KEY] = save_npz(directory / "arrays.npz", run.arrays)
    (directory / "result.json").write_text(json.dumps(doc), encoding="utf-8")


def serve(requests: TextIO, replies: TextIO) -> None:
    """Answer requests until ``requests`` closes."""
    from tdcheck.engines.tensorflow import error_text

    sessions: dict[str, Any] = {}
    for line in requests:
        if not line.strip():
            continue
        try:
            handle(Path(json.loads(line)["dir"]), sessions)
            reply: dict[str, Any] = {"ok": True}
        except TdcheckError as exc:
            reply = {"ok": False, "error": exc.message, "exit_code": exc.exit_code}
        except Exception as exc:  # the framework failing on this configuration
            if os.environ.get("TDCHECK_DEBUG", "") not in ("", "0"):
                import traceback

                traceback.print_exc()
            reply = {"ok": False, "error": error_text(exc), "exit_code": EXIT_ENVIRONMENT}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    # Replies go to the real standard output; anything else printed (by a framework, or a
    # stray print) goes to standard error, so it cannot corrupt the replies.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with contextlib.suppress(KeyboardInterrupt):
        serve(sys.stdin, replies)
    replies.close()
    sys.stderr.flush()
    os._exit(0)  # skip the frameworks' slow teardown


if __name__ == "__main__":
    main()
