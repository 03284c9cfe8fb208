"""TensorFlow start-up helpers: error lines, device names, silenced native stderr."""

from __future__ import annotations

import os
import subprocess
import sys

from tdcheck.engines.tensorflow import error_text, short_device


def test_error_text_keeps_the_ops_own_message():
    graph_error = ValueError(
        "Graph execution error:\n\nDetected at node a defined at (most recent call last):\n"
        "  File x\n{{function_node __inference_f_1}} slice index 10 of dimension 0 out of bounds."
        "\n\t [[{{node y}}]] [Op:z]"
    )
    assert error_text(graph_error) == "ValueError: slice index 10 of dimension 0 out of bounds."
    assert error_text(RuntimeError("OOM when\nallocating")) == "RuntimeError: OOM when allocating"
    assert error_text(KeyError()) == "KeyError: no message"
    assert len(error_text(RuntimeError("x" * 1000))) == len("RuntimeError: ") + 300


def test_short_device():
    assert short_device("/job:localhost/replica:0/task:0/device:CPU:0") == "CPU:0"
    assert short_device("/GPU:0") == "GPU:0"
    assert short_device("") == "unknown"


def test_native_stderr_is_silenced_only_inside_the_block():
    code = (
        "import os, sys\n"
        "from tdcheck.engines.tensorflow import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'native noise\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TDCHECK_DEBUG"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True)
    assert out.stderr == b"after\n"
    debug = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                           env={**env, "TDCHECK_DEBUG": "1"})  # fmt: skip
    assert debug.stderr == b"native noise\nafter\n"
