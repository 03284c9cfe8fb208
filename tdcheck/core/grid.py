"""Grids of configurations for ``tdcheck sweep``: expansion, names and shards.

Numeric model options and ``--rnn``/``--dtype`` take comma lists; ``--variants`` takes one
comma list per set and may be repeated. The grid is their cartesian product, in a fixed order
(the option order below, last option fastest), so every run and every shard sees the same
cases with the same indices.

>>> cases = expand({"hidden": "4,8", "seq": "3,5"}, base=CompareConfig())
>>> [(c.hidden, c.seq) for c in cases]
[(4, 3), (4, 5), (8, 3), (8, 5)]
>>> [c.hidden for c in shard(cases, 2, 2)]
[4, 8]
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from tdcheck.core.config import CompareConfig, parse_variants
from tdcheck.errors import ConfigError

T = TypeVar("T")

#: The options that take lists, in the order of the product.
AXES = ("backend", "rnn", "dtype", "variants", "features", "hidden", "units", "seq", "batch")
INT_AXES = ("features", "hidden", "units", "seq", "batch")
DEFAULT_MAX_CASES = 5000


def parse_list(option: str, spec: str | int | None) -> list[Any]:
    """``"4,8, 16"`` -> ``[4, 8, 16]`` for integer axes, strings otherwise; repeats refused."""
    if spec is None:
        return [None]
    if isinstance(spec, int):
        return [spec]
    items = [item.strip() for item in str(spec).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--{option}: give at least one value")
    values: list[Any] = items
    if option in INT_AXES:
        try:
            values = [int(item) for item in items]
        except ValueError:
            raise ConfigError(
                f"--{option}: {spec!r} is not a comma list of whole numbers"
            ) from None
    if len(set(values)) != len(values):
        raise ConfigError(f"--{option}: a value is listed twice in {spec!r}")
    return values


def expand(
    lists: dict[str, Any], base: CompareConfig, max_cases: int = DEFAULT_MAX_CASES
) -> list[CompareConfig]:
    """The validated configurations of the grid, refusing more than ``max_cases``.

    ``lists`` maps an axis to its raw value (a comma list, or for ``variants`` a list of
    comma lists); missing axes keep ``base``'s value.
    """
    axes: dict[str, list[Any]] = {}
    for axis in AXES:
        raw = lists.get(axis)
        if axis == "variants":
            sets = [raw] if isinstance(raw, str) else list(raw or [])
            axes[axis] = [parse_variants(s) for s in sets] or [base.variants]
            if len(set(axes[axis])) != len(axes[axis]):
                raise ConfigError("--variants: a variant set is given twice")
        elif raw is None:
            axes[axis] = [getattr(base, axis)]
        else:
            axes[axis] = parse_list(axis, raw)
    count = 1
    for values in axes.values():
        count *= len(values)
    if count > max_cases:
        sizes = " x ".join(str(len(v)) for v in axes.values() if len(v) > 1)
        raise ConfigError(
            f"the grid has {count} cases ({sizes}), over --max-cases {max_cases}; "
            "shrink it or raise --max-cases"
        )
    cases = []
    for combo in itertools.product(*axes.values()):
        cfg = dataclasses.replace(base, **dict(zip(AXES, combo, strict=True)))
        cases.append(cfg.validated())
    return cases


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard 2 of 4, counted from 1."""
    match = _SHARD_RE.match(spec)
    if not match:
        raise ConfigError(f"--shard: {spec!r} is not K/N (e.g. 1/4)")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard: {spec!r} needs 1 <= K <= N")
    return k, n


def shard(cases: Sequence[T], k: int, n: int) -> list[T]:
    """Case ``i`` (from 0) belongs to shard ``i % n + 1``: disjoint, complete, sizes within 1."""
    return list(cases[k - 1 :: n])


def case_name(cfg: CompareConfig) -> str:
    """A stable, readable name built from the configuration, e.g. for JUnit."""
    trunk = "none" if cfg.rnn == "none" else f"{cfg.rnn}{cfg.hidden}"
    name = f"{trunk}-f{cfg.features}-u{cfg.units}-s{cfg.seq}-b{cfg.batch}-{cfg.dtype}-" + "+".join(
        cfg.variants
    )
    if cfg.backend not in (None, "tensorflow") or cfg.keras != 3:
        name += f"-{cfg.engine}"
    return name
