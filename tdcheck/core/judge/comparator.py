"""The judge: named arrays and pairs in, :class:`~tdcheck.core.result.Comparison` objects out.

A :class:`Pair` names two arrays by the keys ``--save-arrays`` stores them under
(``outputs/dense``, ``gradients/dense/head.kernel``, ``backends/jax/outputs/dense``...), a
kind (``output``, ``gradient``, ``cross-backend``, ``baseline``...), the quantity and the
valid mask. :class:`Judge` chooses the rule for each pair (:mod:`tdcheck.core.judge.rules`):

* ``--exact`` and a pair of variants: :class:`~tdcheck.core.judge.rules.Exact`;
* an element-wise allowance given and no ``--atol/--rtol``:
  :class:`~tdcheck.core.judge.rules.Bound`;
* otherwise :class:`~tdcheck.core.judge.rules.Tolerance` with the configured atol/rtol.

It never sees a model or an engine, so every verdict can be redone from an archive.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tdcheck.core.judge.cross import UNDETERMINED, Side, allowance
from tdcheck.core.judge.rules import Bound, Exact, Rule, Tolerance
from tdcheck.core.result import EXACT, ORACLE, Comparison
from tdcheck.core.stats import ArrayStats

if TYPE_CHECKING:
    from tdcheck.core.config import CompareConfig

#: Array name prefixes compared across backends and with a baseline (never the oracle's).
COMPARED = ("outputs/", "gradients/", "trained/")


@dataclass(frozen=True)
class Pair:
    """One pair to judge: ``arrays[keys[0]]`` (named ``a``) against the reference
    ``arrays[keys[1]]`` (named ``b``)."""

    kind: str
    a: str
    b: str
    keys: tuple[str, str]
    quantity: str = "output"
    where: Any = None


def judge_pair(
    pair: Pair, arrays: dict[str, np.ndarray], rule: Rule, *, equal_nan: bool = False
) -> Comparison:
    """One comparison: the pair's arrays under ``rule`` (a shape mismatch fails, with a note)."""
    actual, expected = (np.asarray(arrays[key]) for key in pair.keys)
    if actual.shape != expected.shape:
        stats = shape_mismatch(actual, expected, rule)
    else:
        stats = rule.measure(actual, expected, where=pair.where, equal_nan=equal_nan)
    return Comparison(pair.kind, pair.a, pair.b, stats, pair.quantity, keys=pair.keys)


def shape_mismatch(a: np.ndarray, b: np.ndarray, rule: Any) -> ArrayStats:
    """A failed comparison of arrays whose shapes differ (e.g. a backend whose head returned
    another length)."""
    atol, rtol = float(getattr(rule, "atol", 0.0)), float(getattr(rule, "rtol", 0.0))
    return ArrayStats(
        shape_a=tuple(a.shape), shape_b=tuple(b.shape), dtype_a=str(a.dtype),
        dtype_b=str(b.dtype), atol=atol, rtol=rtol, exact=isinstance(rule, Exact),
        passed=False, total=int(b.size), mismatched=int(b.size), note="the shapes differ",
    )  # fmt: skip


def raised(
    kind: str, a: str, b: str, errors: dict[str, str], shape: tuple[int, ...], *,
    atol: float, rtol: float, exact: bool,
) -> Comparison:  # fmt: skip
    """A failed comparison for a pair one of whose sides raised instead of computing."""
    failed = a if a in errors else b
    stats = ArrayStats(
        shape_a=shape if a not in errors else (), shape_b=shape if b not in errors else (),
        dtype_a="n/a", dtype_b="n/a", atol=atol, rtol=rtol, exact=exact,
        passed=False, total=int(np.prod(shape)) if shape else 0,
        mismatched=int(np.prod(shape)) if shape else 0,
        note=f"{failed} raised {errors[failed]}",
    )  # fmt: skip
    return Comparison(kind, a, b, stats)


class Judge:
    """Builds :class:`Comparison` objects with one tolerance setting (``tdcheck compare``).

    A comparison given an element-wise ``allowed`` difference (an error bound, see
    :mod:`tdcheck.core.judge.allowances`) is judged by it, unless the user gave
    ``--atol/--rtol`` (they override every bound) or ``--exact`` (variant pairs: bitwise).
    Every judged array lands in ``arrays`` under its comparison's keys.
    """

    def __init__(
        self, *, atol: float, rtol: float, precision: str, user_tolerances: bool, exact: bool,
        equal_nan: bool, valid: np.ndarray, arrays: dict[str, np.ndarray],
    ) -> None:  # fmt: skip
        self.arrays = arrays
        self.atol, self.rtol = atol, rtol
        #: The precision the bounds assume: the dtype, or "tf32" (the command finds out).
        self.precision = precision
        #: Whether the engine flushes subnormals to zero in this dtype on this device (the
        #: command asks the engine's probe); the bounds then allow what flushing loses.
        self.ftz = False
        #: The precision the engine's matrix products add in for this dtype and head shape
        #: (its probe: "float32" for float16/bfloat16 on every CPU framework measured; None:
        #: not probed, the dtype's). Only the statistical rule uses it.
        self.accumulation: str | None = None
        self.user_tolerances = user_tolerances
        self.exact = exact
        self.equal_nan = equal_nan
        self.valid = valid
        self.comparisons: list[Comparison] = []

    @classmethod
    def for_config(
        cls, cfg: CompareConfig, valid: np.ndarray, arrays: dict[str, np.ndarray]
    ) -> Judge:
        atol, rtol = cfg.tolerances()
        return cls(atol=atol, rtol=rtol, precision=cfg.dtype, user_tolerances=cfg.atol is not None,
                   exact=cfg.exact, equal_nan=cfg.equal_nan, valid=valid,
                   arrays=arrays)  # fmt: skip

    def with_tolerances(self, atol: float, rtol: float) -> Judge:
        """A judge with other atol/rtol that records into the same comparisons and arrays
        (e.g. TF32's tolerances for a cross-device pair)."""
        other = Judge(atol=atol, rtol=rtol, precision=self.precision,
                      user_tolerances=self.user_tolerances, exact=self.exact,
                      equal_nan=self.equal_nan, valid=self.valid,
                      arrays=self.arrays)  # fmt: skip
        other.comparisons = self.comparisons
        other.ftz = self.ftz
        other.accumulation = self.accumulation
        return other

    def rule(self, a: str, b: str, allowed: Any = None, rule: str = "bound") -> Rule:
        """The rule for a pair: ``--exact`` is for pairs of variants (a float32 output is
        never bitwise equal to the float64 oracle, so the oracle keeps tolerances)."""
        exact = self.exact and ORACLE not in (a, b)
        if exact:
            return Exact(self.atol, self.rtol)
        if allowed is not None and not self.user_tolerances:
            return Bound(allowed, rule, self.atol, self.rtol)
        return Tolerance(self.atol, self.rtol)

    def __call__(
        self, kind: str, a: str, b: str, actual: Any, expected: Any, quantity: str = "output",
        where: Any = None, allowed: Any = None, rule: str = "bound",
        keys: tuple[str, str] | None = None,
    ) -> Comparison:  # fmt: skip
        stats = self.measure(a, b, actual, expected, where, allowed, rule)
        keys = keys or (f"{kind}/{quantity}/{a}", f"{kind}/{quantity}/{b}")
        for key, value in zip(keys, (actual, expected), strict=True):
            self.arrays.setdefault(key, np.asarray(value))
        comparison = Comparison(kind, a, b, stats, quantity, keys=keys)
        self.comparisons.append(comparison)
        return comparison

    def measure(
        self, a: str, b: str, actual: Any, expected: Any, where: Any = None,
        allowed: Any = None, rule: str = "bound",
    ) -> ArrayStats:  # fmt: skip
        """The statistics under this judge's rules, without recording a comparison."""
        return self.rule(a, b, allowed, rule).measure(
            actual, expected, where=where, equal_nan=self.equal_nan
        )

    def pair(
        self, kind: str, a: str, b: str, arrays: dict[str, np.ndarray], errors: dict[str, str],
        where: Any = None, allowed: dict[str, Any] | None = None, rule: str = "bound",
        keys: tuple[str, str] | None = None,
    ) -> Comparison:  # fmt: skip
        """Judge ``arrays[a]`` against ``arrays[b]``, or record that one of them raised.

        ``allowed`` maps a name to its own bound; a pair is allowed the sum of both.
        """
        failed = [name for name in (a, b) if name in errors]
        if not failed:
            bound = None
            if allowed is not None:
                bound = sum(allowed[name] for name in (a, b) if name in allowed)
            return self(kind, a, b, arrays[a], arrays[b], where=where, allowed=bound, rule=rule,
                        keys=keys)  # fmt: skip
        other = arrays.get(b if failed[0] == a else a)
        shape = tuple(other.shape) if other is not None else ()
        comparison = raised(kind, a, b, errors, shape, atol=self.atol, rtol=self.rtol,
                            exact=self.exact)  # fmt: skip
        self.comparisons.append(comparison)
        return comparison


def archive_pairs(
    actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], *, kind: str,
    label_a: str, label_b: str, valid: np.ndarray, lengths: bool, variants: tuple[str, ...],
) -> list[tuple[Pair, str]]:  # fmt: skip
    """The pairs two runs' archives share: every variant's output, gradient, trained weights
    and trained output (never the oracle's), each with the key it has on both sides."""
    pairs = []
    for key in sorted(expected):
        if not key.startswith(COMPARED) or key not in actual or "/oracle" in key:
            continue
        if key.startswith(("trained/gradients/", "trained/targets")):
            continue  # what the training allowance is derived from, not a result
        parts = key.split("/")
        if key.startswith("trained/outputs/"):
            variant, quantity = parts[2], "trained output"
        elif key.startswith("trained/"):
            variant, quantity = parts[1], f"trained {'/'.join(parts[2:])}"
        elif key.startswith("gradients/"):
            variant, quantity = parts[1], "/".join(parts[2:]) or "gradient"
        else:
            variant, quantity = parts[1], "output"
        if variant not in variants:  # the oracle, the cotangent R, another device's output
            continue
        where = None
        if lengths and quantity in ("output", "trained output"):
            where = valid[..., None]
        pair = Pair(kind, f"{variant}{label_a}", f"{variant}{label_b}", (key, key), quantity, where)
        pairs.append((pair, key))
    return pairs


def judge_arrays(
    actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], *, kind: str, atol: float,
    rtol: float, exact: bool, label_a: str, label_b: str, valid: np.ndarray, lengths: bool,
    variants: tuple[str, ...], sides: tuple[Side, Side] | None = None,
    cfg: CompareConfig | None = None,
) -> list[Comparison]:  # fmt: skip
    """Compare the trunk output and every variant's output, gradient, trained weights and
    trained output that both archives hold (kinds ``cross-backend`` and ``baseline``).

    With ``sides`` (each side's arrays and environment) and ``cfg``, every quantity is judged
    as within one backend: each side's allowance against the float64 reference, added
    (:mod:`tdcheck.core.judge.cross`). ``--atol/--rtol`` given, or an array an allowance needs
    missing (an old baseline): atol/rtol; ``--exact``: bitwise.
    """
    plain: Rule = Exact(atol, rtol) if exact else Tolerance(atol, rtol)
    bounded = sides is not None and cfg is not None and cfg.atol is None and not exact
    comparisons = []
    pairs = archive_pairs(actual, expected, kind=kind, label_a=label_a, label_b=label_b,
                          valid=valid, lengths=lengths, variants=variants)  # fmt: skip
    with_trunk = bounded and cfg is not None and cfg.rnn != "none"
    if with_trunk and "features" in actual and "features" in expected:
        where = valid[..., None] if lengths else None
        trunk = Pair(kind, f"trunk{label_a}", f"trunk{label_b}", ("features", "features"),
                     "trunk output", where)  # fmt: skip
        pairs.insert(0, (trunk, "features"))
    for pair, key in pairs:
        a, b = np.asarray(actual[key]), np.asarray(expected[key])
        rule = plain
        if bounded and a.shape == b.shape:
            assert sides is not None and cfg is not None
            allowed, name = allowance(key, pair.quantity, b, sides, cfg)
            if name == UNDETERMINED:  # rounding decides these (each side's run says why)
                if not np.array_equal(a, b):
                    continue
                rule = Exact(atol, rtol)
            elif allowed is not None:
                rule = Bound(allowed, name, atol, rtol)
        if a.shape != b.shape:
            stats = shape_mismatch(a, b, rule)
        else:
            stats = rule.measure(a, b, where=pair.where)
        comparisons.append(Comparison(pair.kind, pair.a, pair.b, stats, pair.quantity))
    return comparisons


def cross_tolerances_for(cfg: CompareConfig, *, tf32: bool) -> tuple[float, float]:
    """atol/rtol between backends or against a baseline: the user's when both are given,
    else :func:`tdcheck.core.backends.cross_tolerances` for the dtype."""
    from tdcheck.core.backends import cross_tolerances

    if cfg.atol is not None and cfg.rtol is not None:
        return cfg.atol, cfg.rtol
    return cross_tolerances(cfg.dtype, tf32=tf32)


def relabel(comparisons: list[Comparison], engine: str) -> list[Comparison]:
    """One engine's comparisons named ``variant@engine`` (the oracle and the exact head keep
    their names)."""
    out = []
    for c in comparisons:
        a = c.a if c.a in (ORACLE, EXACT) else f"{c.a}@{engine}"
        b = c.b if c.b in (ORACLE, EXACT) else f"{c.b}@{engine}"
        out.append(dataclasses.replace(c, a=a, b=b))
    return out
