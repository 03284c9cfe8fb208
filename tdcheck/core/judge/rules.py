"""The judging rules, one class each, and their registry :data:`RULES`.

A rule turns a pair of arrays into :class:`~tdcheck.core.stats.ArrayStats` (the verdict and
the figures behind it). Every rule has

* ``name``: what the report's ``rule`` field says (a bound rule may carry a longer name,
  e.g. ``prob-bound(lambda=7)``, set by its instance);
* ``doc``: one line for ``docs/checks.md`` and ``--help`` texts;
* ``allowed(expected)``: the element-wise allowed difference ``|a - b|`` (re-judgeable from
  an archive with NumPy alone);
* ``measure(actual, expected, where=..., equal_nan=...)``: the statistics.

Besides ``exact``, ``tolerance`` and ``bound``: ``statistical`` (rounding's RMS and bias, a
stated false-FAIL probability, :mod:`tdcheck.core.rounding`) and ``float64`` (the same
computation agrees to float64 rounding, :mod:`tdcheck.core.samecomp`). Adding one is a
class here with those four members, a :func:`register` decorator, and its test; nothing
else changes (the :class:`Judge` takes any rule object).

>>> import numpy as np
>>> Tolerance(atol=0.1, rtol=0.0).measure(np.array([1.0, 2.0]), np.array([1.0, 2.05])).passed
True
>>> Exact().measure(np.array([1.0]), np.array([1.0 + 2**-52])).passed
False
>>> sorted(RULES)
['bound', 'exact', 'float64', 'statistical', 'tolerance']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from tdcheck.core import rounding, samecomp
from tdcheck.core.stats import ArrayStats, compare_arrays


class Rule(Protocol):
    """What the judge needs of a rule (see the module docstring)."""

    doc: ClassVar[str]

    @property
    def name(self) -> str: ...

    def allowed(self, expected: Any) -> np.ndarray: ...

    def measure(
        self, actual: Any, expected: Any, *, where: Any = None, equal_nan: bool = False
    ) -> ArrayStats: ...


#: Every rule by its registry name: ``{name: class}``; ``cls.doc`` is its documentation line.
RULES: dict[str, type[Any]] = {}

R = TypeVar("R")


def register(key: str) -> Any:
    """Class decorator: add a rule to :data:`RULES` under ``key``."""

    def add(cls: type[R]) -> type[R]:
        if key in RULES:
            raise ValueError(f"rule {key!r} is already registered")
        RULES[key] = cls
        return cls

    return add


@register("exact")
@dataclass(frozen=True)
class Exact:
    """Bitwise equality (after rounding both sides to the lower precision).

    ``atol``/``rtol`` only fill the report's ``min_atol``/``min_rtol`` (what would have passed);
    they do not decide.
    """

    atol: float = 0.0
    rtol: float = 0.0
    name: str = "exact"
    doc: ClassVar[str] = "exact: identical bits, element by element (--exact)"

    def allowed(self, expected: Any) -> np.ndarray:
        return np.zeros(np.shape(expected))

    def measure(
        self, actual: Any, expected: Any, *, where: Any = None, equal_nan: bool = False
    ) -> ArrayStats:
        return compare_arrays(actual, expected, atol=self.atol, rtol=self.rtol, exact=True,
                              where=where, equal_nan=equal_nan)  # fmt: skip


@register("tolerance")
@dataclass
class Tolerance:
    """``|a - b| <= atol + rtol * |b|`` element-wise (NumPy's ``isclose``, ``b`` the reference).

    ``dtype`` and ``source`` say where the numbers came from (``default``: the dtype's
    defaults; ``given``: the user's ``--atol/--rtol``); ``per_output`` holds the tolerances
    given for single outputs (``--atol name=1e-4``), see :meth:`for_output`.
    """

    atol: float
    rtol: float
    dtype: str = ""
    source: str = "given"
    per_output: dict[str, tuple[float, float]] | None = None
    name: str = "atol/rtol"
    doc: ClassVar[str] = "tolerance: |a - b| <= atol + rtol * |b| (--atol/--rtol, per output)"

    def allowed(self, expected: Any) -> np.ndarray:
        return self.atol + self.rtol * np.abs(np.asarray(expected, np.float64))

    def measure(
        self, actual: Any, expected: Any, *, where: Any = None, equal_nan: bool = False
    ) -> ArrayStats:
        return compare_arrays(actual, expected, atol=self.atol, rtol=self.rtol, where=where,
                              equal_nan=equal_nan)  # fmt: skip

    def for_output(self, output: str) -> Tolerance:
        """The tolerance one output is judged with: its own when given, else this one."""
        if not self.per_output or output not in self.per_output:
            return self
        atol, rtol = self.per_output[output]
        return Tolerance(atol, rtol, self.dtype, "given")

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "atol": self.atol, "rtol": self.rtol, "dtype": self.dtype, "source": self.source,
        }  # fmt: skip
        if self.per_output:
            doc["per_output"] = {
                name: {"atol": a, "rtol": r} for name, (a, r) in self.per_output.items()
            }
        return doc


@register("bound")
@dataclass
class Bound:
    """``|a - b| <= allowed`` element-wise, ``allowed`` an error bound (see
    :mod:`tdcheck.core.bounds` and :mod:`tdcheck.core.judge.allowances`).

    ``name`` is the report's rule text (``bound``, ``prob-bound(...)``, ``scaled``...);
    ``atol``/``rtol`` only fill ``min_atol``/``min_rtol``.
    """

    bound: Any
    name: str = "bound"
    atol: float = 0.0
    rtol: float = 0.0
    doc: ClassVar[str] = (
        "bound: |a - b| <= an element-wise rounding-error bound derived from the reference "
        "side's own values (core/bounds.py)"
    )

    def allowed(self, expected: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.bound, np.float64), np.shape(expected))

    def measure(
        self, actual: Any, expected: Any, *, where: Any = None, equal_nan: bool = False
    ) -> ArrayStats:
        stats = compare_arrays(actual, expected, atol=self.atol, rtol=self.rtol, where=where,
                               allowed=self.bound, equal_nan=equal_nan)  # fmt: skip
        stats.rule = self.name
        return stats


@register("float64")
@dataclass
class Float64:
    """Same computation: two heads evaluated in float64 from their stored weights agree to
    float64 rounding (``allowed``: both sides' worst-case float64 bounds), and the exact
    ``h dW + db`` certificate of :func:`tdcheck.core.samecomp.same_computation` finds no
    difference of the stored weights (``result``)."""

    result: Any  # tdcheck.core.samecomp.SameComputation
    atol: float = 0.0
    rtol: float = 0.0
    name: str = "float64"
    doc: ClassVar[str] = (
        "float64: both sides evaluated in float64 from their stored weights agree to float64 "
        "rounding, or they are different computations (core/samecomp.py)"
    )

    def allowed(self, expected: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.result.allowed, np.float64), np.shape(expected))

    def measure(
        self, actual: Any, expected: Any, *, where: Any = None, equal_nan: bool = False
    ) -> ArrayStats:
        stats = samecomp.stats(self.result, where)
        stats.atol, stats.rtol = self.atol, self.rtol  # (shown; the rule is float64's)
        return stats


@register("statistical")
@dataclass
class Statistical:
    """Rounding judged by its real size: the error's RMS, bias and scale (pooled and per
    unit) against the rounding model ``scale`` of the reference's weights, false-FAIL
    probability ``p`` per comparison (:mod:`tdcheck.core.rounding`)."""

    scale: Any  # tdcheck.core.rounding.Scale
    atol: float = 0.0
    rtol: float = 0.0
    p: float = 1e-9
    name: str = "statistical"
    doc: ClassVar[str] = (
        "statistical: the error's RMS and bias within rounding's (Higham-Mary model), "
        "false-FAIL probability <= 1e-9 per comparison (core/rounding.py)"
    )

    def allowed(self, expected: Any) -> np.ndarray:
        lam = rounding.direction_threshold(self.p)
        reach = lam * self.scale.sigma + self.scale.slack + np.abs(self.scale.offset)
        return np.broadcast_to(reach, np.shape(expected))

    def measure(
        self, actual: Any, expected: Any, *, where: Any = None, equal_nan: bool = False
    ) -> ArrayStats:
        stats = rounding.stats(actual, expected, self.scale, where, self.p)
        stats.atol, stats.rtol = self.atol, self.rtol
        return stats
