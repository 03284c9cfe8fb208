"""Core numerics: options, tolerances, statistics, the float64 oracle, inputs and grids.

Pure Python and NumPy: nothing here imports TensorFlow, JAX or PyTorch.
"""
