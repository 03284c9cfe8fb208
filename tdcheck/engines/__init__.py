"""Engines: the only code that imports a deep-learning framework (TensorFlow today)."""
