"""The rewrite's pass rule: the same computation in float64, rounding of the original's size.

``tdcheck rewrite`` replaces ``TimeDistributed(layer)`` by ``layer``: the same arithmetic in
another summation order (one matrix product for all timesteps instead of one per timestep).
In float32 the two round differently, by an amount that grows with the size of the sums
(a Faster R-CNN head at batch 1 differs by 1.8e-5, over the fixed atol 1e-5), so a fixed
atol can fail a correct rewrite. The rule, in two parts:

1. **Same computation**: both models are also run as float64 clones (every float dtype set to
   float64, the stored weights cast exactly) on the same inputs. Their outputs must agree to
   float64 rounding: ``16 u64 |a64| + k (u64 / u) max|a - a64|``, where ``max|a - a64|`` is
   the original's own rounding error in its dtype (unit roundoff ``u``) on that output,
   measured against its float64 clone. That error already holds how much this network
   amplifies rounding (long sums, a softmax over large logits); scaled to float64's unit
   roundoff it is what reordering the sums can do in float64. A changed weight, axis or
   structure differs by far more (one kernel element of 1024 changed by 2**-20 of itself:
   100x and more over it).
2. **Rounding of the original's own size**: each output of the rewritten model passes when
   ``|b - a| <= atol + rtol |a| + k max|a - a64|``. Two evaluations of the same computation in
   different orders each deviate from the exact result by rounding of the same size, so their
   difference stays within about twice that; ``k`` = :data:`ROUNDING_FACTOR` = 4 leaves a
   margin of 2 (measured ``|b - a| / max|a - a64|``: 0.6 to 1.5 on a Faster R-CNN head at
   batch 1, docs/models.md). A rewritten model that lost precision (computing in float16,
   say) is 1000x over it.

Both allowances are empirical rules (no proof for a whole network), sized from the model's
own measured rounding rather than from a fixed atol.

Pure NumPy.

>>> import numpy as np
>>> rounding_allowance(np.array([1.0, 2.0]), np.array([1.0 + 2**-20, 2.0]), 0.0, 0.0).tolist()
[3.814697265625e-06, 3.814697265625e-06]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdcheck.core.tolerances import unit_roundoff

#: ``k`` of the rounding rule: allowed multiple of the original's own float32 rounding error.
ROUNDING_FACTOR = 4.0

#: The dtypes the rule applies to (float64 models are judged by their own tolerances).
SHADOWED_DTYPES = ("float32", "float16", "bfloat16")


#: ``16 u64``: the relative part of the float64 rule (a few roundings of the output itself).
FLOAT64_RTOL = 16 * unit_roundoff("float64")


def own_error(reference: Any, reference64: Any) -> float:
    """``max|a - a64|``: the original's own rounding error on one output (finite elements)."""
    a = np.asarray(reference, np.float64)
    a64 = np.asarray(reference64, np.float64)
    if a.shape != a64.shape:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(a - a64)
    finite = error[np.isfinite(error)]
    return float(finite.max()) if finite.size else 0.0


def float64_allowance(
    reference: Any, reference64: Any, dtype: str, factor: float = ROUNDING_FACTOR
) -> np.ndarray:
    """Allowed difference between the two float64 clones: ``16 u64 |a64| + factor (u64 / u)
    max|a - a64|`` (``a`` the original's output in ``dtype``, ``a64`` its float64 clone's).

    >>> float64_allowance(np.array([1.0]), np.array([1.0 + 2**-20]), "float32").tolist()
    [8.881785891067147e-15]
    """
    a64 = np.asarray(reference64, np.float64)
    scale = unit_roundoff("float64") / unit_roundoff(dtype)
    return FLOAT64_RTOL * np.abs(a64) + factor * scale * own_error(reference, a64)


def rounding_allowance(
    reference: Any, reference64: Any, atol: float, rtol: float, factor: float = ROUNDING_FACTOR
) -> np.ndarray:
    """``atol + rtol |a| + factor max|a - a64|``: the original's own rounding, ``factor`` times."""
    a = np.asarray(reference, np.float64)
    return atol + rtol * np.abs(a) + factor * own_error(a, reference64)


def rule_text(dtype: str, factor: float = ROUNDING_FACTOR) -> str:
    """The rule in one line, for the report."""
    return (
        f"pass rule: the same computation in float64 (both models' float64 clones agree within "
        f"16 u64 |a64| + {factor:g} (u64/u) max|a - a64|), and |b - a| <= atol + rtol * |a| + "
        f"{factor:g} * max|a - a64| (max|a - a64|: the original's own {dtype} rounding against "
        "its float64 clone)"
    )
