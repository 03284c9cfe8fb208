"""Worker processes and their protocol: run a configuration on another Keras backend.

* :mod:`.protocol`: what travels between the parent and a worker (JSON, ``.npy``/``.npz``
  read with ``allow_pickle=False``; nothing is pickled);
* :mod:`.worker`: :class:`~.worker.Worker` (the parent's handle on one process) and
  :func:`~.worker.serve` (the worker's request loop);
* :mod:`.engine_runner`: :class:`~.engine_runner.EngineRunner`, which runs each configuration
  here or in a kept worker.

Runners import core and engines only. What a worker *does* with a request is a command
(:mod:`tdcheck.commands.worker`, the process's entry point), handed to :func:`~.worker.serve`.
"""
