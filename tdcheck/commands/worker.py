"""The command a worker process runs: ``python -m tdcheck.commands.worker``.

The process, its protocol and its request loop are :mod:`tdcheck.runners` (see
:mod:`tdcheck.runners.worker`); this module is what a worker *does* with one request, which is
a command's business: run a comparison on this process's engine (:class:`Session`, reused
across requests) or a bench plan (``{"engine": NAME, "bench": PLAN}``,
:func:`tdcheck.commands.bench.plan_to_dict`, answered with ``result.json`` only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tdcheck.runners import protocol
from tdcheck.runners.worker import main


def handle(directory: Path, sessions: dict[str, Any]) -> None:
    """Run one request (see :mod:`tdcheck.runners.protocol` for its files)."""
    from tdcheck.commands.session import Session

    request = protocol.read_request(directory)
    engine = request["engine"]
    if "bench" in request:  # tdcheck bench: the plan in, the report document out
        from tdcheck.commands.bench import plan_from_dict, run_bench

        doc = run_bench(plan_from_dict(request["bench"])).to_dict()
        (directory / "result.json").write_text(json.dumps(doc), encoding="utf-8")
        return
    cfg = protocol.config_from_dict(request["config"])
    x = protocol.read_input(directory)
    if engine not in sessions:
        sessions[engine] = Session(engine=engine)
    sessions[engine].use_weights(protocol.read_weights(directory))
    protocol.write_result(directory, sessions[engine].run(cfg, x))


if __name__ == "__main__":
    main(handle)
