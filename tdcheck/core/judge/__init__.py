"""The judge: named arrays, pairs and rules in, comparisons out. NumPy only.

* :mod:`.rules`: one class per rule (``exact``, ``tolerance``, ``bound``) and the registry
  :data:`~.rules.RULES` where ``statistical`` and ``float64`` go;
* :mod:`.comparator`: :class:`~.comparator.Pair`, :class:`~.comparator.Judge` and the
  archive-to-archive judging of ``--backends`` and ``--baseline``;
* :mod:`.allowances`: the element-wise allowances of the ``bound`` rule;
* :mod:`.power`: ``--power``'s fault injection, judged by the same judge;
* :mod:`.outputs`: a user's model against another (``models``, ``rewrite``).

Every comparison kind goes through here; commands choose what to run and which pairs to
judge, engines produce the arrays, and the judge never sees a model or an engine.
"""

from tdcheck.core.judge.allowances import (
    bound_precision,
    gradient_pair_allowance,
    head_gradient_bounds,
    oracle_allowances,
    output_bounds,
    scaled_gradient_allowance,
)
from tdcheck.core.judge.comparator import (
    COMPARED,
    Judge,
    Pair,
    archive_pairs,
    cross_tolerances_for,
    judge_arrays,
    judge_pair,
    raised,
    relabel,
    shape_mismatch,
)
from tdcheck.core.judge.outputs import judge_output, judge_outputs, raised_stats, tolerance_for
from tdcheck.core.judge.power import power_check
from tdcheck.core.judge.rules import RULES, Bound, Exact, Rule, Tolerance, register

__all__ = [
    "COMPARED",
    "RULES",
    "Bound",
    "Exact",
    "Judge",
    "Pair",
    "Rule",
    "Tolerance",
    "archive_pairs",
    "bound_precision",
    "cross_tolerances_for",
    "gradient_pair_allowance",
    "head_gradient_bounds",
    "judge_arrays",
    "judge_output",
    "judge_outputs",
    "judge_pair",
    "oracle_allowances",
    "output_bounds",
    "power_check",
    "raised",
    "raised_stats",
    "register",
    "relabel",
    "scaled_gradient_allowance",
    "shape_mismatch",
    "tolerance_for",
]
