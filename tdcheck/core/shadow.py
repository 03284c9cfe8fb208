"""The rewrite's pass rule: the same computation in float64, rounding of the original's size.

``tdcheck rewrite`` replaces ``TimeDistributed(layer)`` by ``layer``: the same arithmetic in
another summation order (one matrix product for all timesteps instead of one per timestep).
In float32 the two round differently, by an amount that grows with the size of the sums
(a Faster R-CNN head at batch 1 differs by 1.8e-5, over the fixed atol 1e-5), so a fixed
atol can fail a correct rewrite. The rule, in two parts:

1. **Same computation**: both models are also run as float64 clones (every float dtype set to
   float64, the stored weights cast exactly) on the same inputs. Their outputs must agree to
   float64 rounding, ``atol64 + rtol64 |a| + lam u64 sqrt(n) rms(a)``
   (:func:`tdcheck.core.bounds.scaled_allowance`, ``n`` the largest per-timestep input of the
   replaced layers, i.e. the longest sum the rewrite reorders). A changed weight, axis or
   structure differs there by far more than float64 rounding.
2. **Rounding of the original's own size**: each float32 output of the rewritten model
   passes when ``|b - a| <= atol + rtol |a| + k max|a - a64|``, where ``max|a - a64|`` is the
   original's own float32 rounding error on that output (measured against its float64 clone)
   and ``k`` = :data:`ROUNDING_FACTOR`. Two evaluations of the same computation in different
   orders each deviate from the exact result by rounding of the same size, so their
   difference stays within about twice that; ``k = 4`` leaves a margin of 2 (measured
   ratios ``|b - a| / max|a - a64|``: 0.6 to 1.5 on a Faster R-CNN head, docs/models.md).
   A rewritten model that lost precision (say, computing in float16) is 1000x over it.

Pure NumPy.

>>> import numpy as np
>>> rounding_allowance(np.array([1.0, 2.0]), np.array([1.0 + 2**-20, 2.0]), 0.0, 0.0).tolist()
[3.814697265625e-06, 3.814697265625e-06]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tdcheck.core.bounds import scaled_allowance
from tdcheck.core.tolerances import DEFAULT_TOLERANCES

#: ``k`` of the rounding rule: allowed multiple of the original's own float32 rounding error.
ROUNDING_FACTOR = 4.0

#: The dtypes the rule applies to (float64 models are judged by their own tolerances).
SHADOWED_DTYPES = ("float32", "float16", "bfloat16")


def float64_allowance(reference64: Any, n: int) -> np.ndarray:
    """Allowed difference between two float64 evaluations of the same computation."""
    atol, rtol = DEFAULT_TOLERANCES["float64"]
    return scaled_allowance(np.asarray(reference64, np.float64), max(int(n), 1), "float64",
                            atol, rtol)  # fmt: skip


def rounding_allowance(
    reference: Any, reference64: Any, atol: float, rtol: float, factor: float = ROUNDING_FACTOR
) -> np.ndarray:
    """``atol + rtol |a| + factor max|a - a64|``: the original's own rounding, ``factor`` times."""
    a = np.asarray(reference, np.float64)
    a64 = np.asarray(reference64, np.float64)
    if a.shape != a64.shape:
        return atol + rtol * np.abs(a)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(a - a64)
    finite = error[np.isfinite(error)]
    own = float(finite.max()) if finite.size else 0.0
    return atol + rtol * np.abs(a) + factor * own


def contraction_size(input_shapes: Sequence[Sequence[Any] | None]) -> int:
    """The largest per-timestep input size (axes after batch and time) of the given layers:
    the longest sum a rewrite can reorder. Unknown sizes count as 1.

    >>> contraction_size([[None, None, 7, 7, 64], [None, None, 256], None])
    3136
    """
    sizes = [1]
    for shape in input_shapes:
        if shape is None or len(shape) < 3:
            continue
        size = 1
        for d in shape[2:]:
            size *= d if isinstance(d, int) and d > 0 else 1
        sizes.append(size)
    return max(sizes)


def rule_text(n: int, factor: float = ROUNDING_FACTOR) -> str:
    """The rule in one line, for the report."""
    return (
        f"pass rule: the same computation in float64 (both models run as float64 clones agree to "
        f"float64 rounding over sums of n = {n}), and |b - a| <= atol + rtol * |a| + "
        f"{factor:g} * max|a - a64| (the original's own rounding, a64 its float64 output)"
    )
