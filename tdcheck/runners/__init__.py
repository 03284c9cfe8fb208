"""Worker processes and their protocol, and Ray actors: where a configuration runs.

* :mod:`.protocol`: what travels between the parent and a worker (JSON, ``.npy``/``.npz``
  read with ``allow_pickle=False``; nothing is pickled);
* :mod:`.worker`: :class:`~.worker.Worker` (the parent's handle on one process) and
  :func:`~.worker.serve` (the worker's request loop);
* :mod:`.engine_runner`: :class:`~.engine_runner.EngineRunner`, which runs each configuration
  here or in a kept worker;
* :mod:`.ray_executor`: :class:`~.ray_executor.RayPool`, sweep cases on Ray actors
  (``tdcheck sweep --executor ray``; Ray's API is :mod:`tdcheck.engines.ray_cluster`).

Runners import core and engines only. What a worker *does* with a request is a command
(:mod:`tdcheck.commands.worker`, the process's entry point), handed to :func:`~.worker.serve`.
"""
