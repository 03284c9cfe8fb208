"""Grids of configurations for ``tdcheck sweep``: expansion, names, selection, shards,
fingerprints and the ``tdcheck compare`` command that reproduces a case.

Every option that shapes a case takes a comma list: the sizes, ``--rnn``, ``--dtype``,
``--activation``, ``--initializer``, ``--bias-initializer``, ``--weights``, ``--time-dim``,
``--seed``, and ``--lengths`` (one length vector per item, its rows joined by ``:``, e.g.
``3:2,2:2``); ``--variants`` takes one comma list per set and may be repeated. The grid is
their cartesian product, in a fixed order (the order of :data:`AXES`, last one fastest), so
every run and every shard sees the same cases with the same indices.

>>> cases = expand({"hidden": "4,8", "seq": "3,5"}, base=CompareConfig())
>>> [(c.hidden, c.seq) for c in cases]
[(4, 3), (4, 5), (8, 3), (8, 5)]
>>> [c.hidden for c in shard(cases, 2, 2)]
[4, 8]
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tdcheck._version import __version__
from tdcheck.core.config import CompareConfig, parse_variants
from tdcheck.errors import ConfigError

T = TypeVar("T")

#: The options that take lists (config field names), in the order of the product.
AXES = (
    "backend", "rnn", "dtype", "variants", "activation", "initializer", "bias_initializer",
    "weights", "time_dim", "features", "hidden", "units", "seq", "batch", "lengths", "seed",
)  # fmt: skip
INT_AXES = ("features", "hidden", "units", "seq", "batch", "seed")
DEFAULT_MAX_CASES = 5000
#: Separates the rows of one ``--lengths`` vector in a sweep (commas separate the vectors).
LENGTHS_SEPARATOR = ":"


def option_name(axis: str) -> str:
    """``bias_initializer`` -> ``--bias-initializer``."""
    return "--" + axis.replace("_", "-")


def parse_list(option: str, spec: str | int | None) -> list[Any]:
    """``"4,8, 16"`` -> ``[4, 8, 16]`` for integer axes, strings otherwise; repeats refused.

    >>> parse_list("lengths", "3:2, 2:2")
    [(3, 2), (2, 2)]
    """
    flag = option_name(option)
    if spec is None:
        return [None]
    if isinstance(spec, int):
        return [spec]
    items = [item.strip() for item in str(spec).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{flag}: give at least one value")
    values: list[Any] = items
    if option in INT_AXES:
        try:
            values = [int(item) for item in items]
        except ValueError:
            raise ConfigError(f"{flag}: {spec!r} is not a comma list of whole numbers") from None
    elif option == "lengths":
        try:
            values = [tuple(int(n) for n in item.split(LENGTHS_SEPARATOR)) for item in items]
        except ValueError:
            raise ConfigError(
                f"{flag}: {spec!r} is not a comma list of length vectors "
                f"(rows joined by '{LENGTHS_SEPARATOR}', e.g. 3:2,2:2)"
            ) from None
    if len(set(values)) != len(values):
        raise ConfigError(f"{flag}: a value is listed twice in {spec!r}")
    return values


def axis_values(lists: dict[str, Any], base: CompareConfig) -> dict[str, list[Any]]:
    """Each axis's list of values (``base``'s value where the axis is not given)."""
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
    return axes


def expand(
    lists: dict[str, Any], base: CompareConfig, max_cases: int = DEFAULT_MAX_CASES
) -> list[CompareConfig]:
    """The validated configurations of the grid, refusing more than ``max_cases``.

    ``lists`` maps an axis to its raw value (a comma list, or for ``variants`` a list of
    comma lists); missing axes keep ``base``'s value.
    """
    return expand_axes(axis_values(lists, base), base, max_cases)


def expand_axes(
    axes: dict[str, list[Any]], base: CompareConfig, max_cases: int = DEFAULT_MAX_CASES
) -> list[CompareConfig]:
    """:func:`expand` from already parsed axis values."""
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


def resolve(cfg: CompareConfig, input_shape: tuple[int, ...] | None) -> CompareConfig:
    """What ``compare`` checks before TensorFlow loads: sizes, lengths, memory (exit 2)."""
    resolved = cfg.resolve_sizes(input_shape)
    resolved.check_lengths()
    resolved.check_memory()
    return resolved


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


def shard_of(position: int, n: int) -> int:
    """The shard (from 1) of the case at ``position`` in the selection."""
    return position % n + 1


# -- names --------------------------------------------------------------------------------

#: Axes that appear in a case name only when they vary in the grid or differ from the
#: default, as ``key=value``.
_NAME_EXTRAS = (
    ("backend", "backend"), ("activation", "act"), ("initializer", "init"),
    ("bias_initializer", "bias"),
    ("weights", "weights"), ("time_dim", "time"), ("lengths", "len"), ("seed", "seed"),
)  # fmt: skip
_DEFAULTS = CompareConfig().validated()


def _value_text(axis: str, value: Any) -> str:
    if axis == "lengths":
        return "none" if value is None else LENGTHS_SEPARATOR.join(str(n) for n in value)
    return str(value)


def case_name(cfg: CompareConfig, varying: Sequence[str] = ()) -> str:
    """A stable, readable name built from the configuration (JUnit, ``-k``).

    The sizes, trunk, dtype and variants are always in it; the other axes are added as
    ``key=value`` when they are in ``varying`` or differ from ``compare``'s default.

    >>> case_name(CompareConfig(seed=3).validated().resolve_sizes(None))
    'lstm5-f4-u2-s3-b1-float32-dense+time-distributed-seed=3'
    """
    trunk = f"{cfg.rnn}{cfg.hidden}"
    if cfg.rnn == "none":  # no trunk: --hidden is unused, named only when it varies
        trunk = f"none-h{cfg.hidden}" if "hidden" in varying else "none"
    parts = [trunk, f"f{cfg.features}", f"u{cfg.units}", f"s{cfg.seq}", f"b{cfg.batch}",
             cfg.dtype, "+".join(cfg.variants)]  # fmt: skip
    for axis, key in _NAME_EXTRAS:
        value = getattr(cfg, axis)
        if axis in varying or value != getattr(_DEFAULTS, axis):
            parts.append(f"{key}={_value_text(axis, value)}")
    return "-".join(parts)


def varying_axes(axes: dict[str, list[Any]]) -> list[str]:
    return [axis for axis, values in axes.items() if len(values) > 1]


# -- -k expressions -------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\(|\)|[^\s()]+")


def parse_selection(expr: str) -> Callable[[str], bool]:
    """Compile a pytest-style ``-k`` expression into a predicate on case names.

    Words match as case-insensitive substrings of the name; ``and``, ``or``, ``not`` and
    parentheses combine them (``not`` binds tightest, then ``and``, then ``or``). A small
    recursive-descent parser: nothing is evaluated as Python.

    >>> match = parse_selection("gru and not (s10 or float16)")
    >>> match("gru8-f4-u2-s3-b1-float32-dense"), match("gru8-f4-u2-s10-b1-float32-dense")
    (True, False)
    """
    tokens = _TOKEN_RE.findall(expr)
    if not tokens:
        raise ConfigError("-k: the expression is empty")
    pos = 0
    Pred = Callable[[str], bool]

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        return token

    def fail(why: str) -> ConfigError:
        return ConfigError(f"-k: {why} in {expr!r}")

    def or_expr() -> Pred:
        terms = [and_expr()]
        while peek() == "or":
            take()
            terms.append(and_expr())
        return terms[0] if len(terms) == 1 else (lambda name: any(t(name) for t in terms))

    def and_expr() -> Pred:
        terms = [not_expr()]
        while peek() == "and":
            take()
            terms.append(not_expr())
        return terms[0] if len(terms) == 1 else (lambda name: all(t(name) for t in terms))

    def not_expr() -> Pred:
        if peek() == "not":
            take()
            inner = not_expr()
            return lambda name: not inner(name)
        return primary()

    def primary() -> Pred:
        token = peek()
        if token is None:
            raise fail("the expression ends too early")
        if token == "(":
            take()
            inner = or_expr()
            if peek() != ")":
                raise fail("a '(' is not closed")
            take()
            return inner
        if token in (")", "and", "or"):
            raise fail(f"unexpected {token!r}")
        word = take().lower()
        return lambda name: word in name.lower()

    predicate = or_expr()
    if pos != len(tokens):
        raise fail(f"unexpected {tokens[pos]!r}")
    return predicate


# -- reproduce ------------------------------------------------------------------------------

#: compare options whose value tdcheck always writes out, default or not.
_ALWAYS = ("input", "seed")


def compare_arguments(cfg: CompareConfig) -> list[str]:
    """The ``tdcheck compare`` arguments for ``cfg``: every option that differs from
    compare's defaults, plus ``--input`` and ``--seed``.

    Sizes left to the input file (``None``) are left out. A boolean option whose default is
    off is written as its flag (``--exact``); one that is on by default as ``--no-NAME``.

    >>> compare_arguments(CompareConfig(hidden=8, exact=True, oracle=False).validated())
    ['--hidden', '8', '--input', 'ones', '--seed', '0', '--exact', '--no-oracle']
    """
    args: list[str] = []
    for f in dataclasses.fields(CompareConfig):
        value = getattr(cfg, f.name)
        default = getattr(_DEFAULTS, f.name)
        if value is None or (value == default and f.name not in _ALWAYS):
            continue
        flag = option_name(f.name)
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (tuple, list)):
            args += [flag, ",".join(str(v) for v in value)]
        elif isinstance(value, float):
            args += [flag, repr(value)]
        else:
            args += [flag, str(value)]
    return args


def reproduce_command(cfg: CompareConfig) -> str:
    """The shell command that runs this case alone, quoted with :func:`shlex.join`.

    >>> reproduce_command(CompareConfig(initializer="he_normal", lengths=(3, 2)).validated())
    'tdcheck compare --initializer he_normal --input ones --seed 0 --lengths 3,2'
    """
    return shlex.join(["tdcheck", "compare", *compare_arguments(cfg)])


# -- fingerprints ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def fingerprint(
    axes: dict[str, list[Any]],
    base: CompareConfig,
    *,
    select: str | None,
    shards: int,
    input_digest: str | None = None,
) -> dict[str, Any]:
    """What makes two sweep reports parts of the same sweep, readable and hashed.

    ``axes``: every axis's values; ``options``: every other option that shapes a case;
    ``select``: the ``-k`` expression; ``shards``: N of ``--shard K/N`` (1 without);
    ``tdcheck``: the version. ``hash`` is the SHA-256 of the rest as canonical JSON.
    """
    options = {
        f.name: _jsonable(getattr(base, f.name))
        for f in dataclasses.fields(CompareConfig)
        if f.name not in AXES
    }
    if input_digest is not None:
        options["input_sha256"] = input_digest
    parts: dict[str, Any] = {
        "tdcheck": __version__,
        "axes": {axis: _jsonable(values) for axis, values in axes.items()},
        "options": options,
        "select": select,
        "shards": shards,
    }
    return {"hash": fingerprint_hash(parts), **parts}


def fingerprint_hash(parts: dict[str, Any]) -> str:
    """``sha256:...`` of a fingerprint's parts (every key but ``hash``) as canonical JSON."""
    rest = {key: value for key, value in parts.items() if key != "hash"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, e.g. ``['axes.hidden', 'shards']``."""
    keys: list[str] = []
    for key in sorted(set(a) | set(b)):
        if key == "hash":
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += [f"{key}.{sub}" for sub in fingerprint_differences(va, vb)]
        elif va != vb:
            keys.append(key)
    return keys
