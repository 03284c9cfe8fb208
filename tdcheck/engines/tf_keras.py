"""Keras 2 (the ``tf_keras`` package) on TensorFlow: ``--keras 2``.

Keras 2 is what the original experiment ran. TensorFlow 2.16+ serves Keras 3 as ``tf.keras``
unless ``TF_USE_LEGACY_KERAS=1``, and tdcheck's model code imports ``keras``: this engine sets
that variable and makes ``keras`` name ``tf_keras`` in its process, so it needs a process of
its own (a worker when Keras 3 is already loaded). It adds ``keras.ops.convert_to_tensor``
(Keras 3's spelling, used to hand the NumPy-drawn trunk weights to the layers) as
``tf.convert_to_tensor``. Everything else is the TensorFlow engine's.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from tdcheck.core.install import install_hint
from tdcheck.engines.tensorflow import TensorFlowEngine, _without_pyplot, quiet_native_stderr
from tdcheck.errors import EnvironmentProblem


class TfKerasEngine(TensorFlowEngine):
    name = "keras2"

    def load(self) -> None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with quiet_native_stderr(), _without_pyplot():
            try:
                import tensorflow as tf
                import tf_keras
            except ImportError as exc:
                raise EnvironmentProblem(
                    f"Keras 2 cannot be imported ({exc}); install it: {install_hint('keras2')}"
                ) from None
        if not hasattr(tf_keras, "ops"):
            tf_keras.ops = types.SimpleNamespace(convert_to_tensor=tf.convert_to_tensor)
        sys.modules["keras"] = tf_keras
        tf.get_logger().setLevel("ERROR")
        self.tf, self.keras = tf, tf_keras

    def versions(self) -> dict[str, str]:
        return {"tensorflow": self.tf.__version__, "keras": self.keras.__version__}

    def apply(self, optimizer: Any, grads: list[Any], params: list[Any]) -> None:
        optimizer.apply_gradients(zip(grads, params, strict=True))  # Keras 2 has no apply()


ENGINE = TfKerasEngine
