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
import json
import math
import os
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tdcheck._version import __version__
from tdcheck.core.config import (
    DEFAULT_BATCH,
    DEFAULT_FEATURES,
    DEFAULT_SEQ,
    CompareConfig,
    parse_variants,
)
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
    """Each axis's list of values (``base``'s value where the axis is not given), every
    value validated and normalised as ``compare`` would (``constant:0.10`` becomes
    ``constant:0.1``, ``ZEROS`` becomes ``zeros``). Two spellings of one value are refused
    (exit 2), naming both: they would be the same case twice."""
    base.validated()  # the options every case shares: their errors are not an axis's
    axes: dict[str, list[Any]] = {}
    for axis in AXES:
        raw = lists.get(axis)
        if axis == "variants":
            sets = [raw] if isinstance(raw, str) else list(raw or [])
            values = [parse_variants(s) for s in sets] or [base.variants]
            if len(set(values)) != len(values):
                raise ConfigError("--variants: a variant set is given twice")
        elif raw is None:
            values = [getattr(base, axis)]
        else:
            values = parse_list(axis, raw)
        axes[axis] = _normalised(axis, values, base)
    return axes


def _normalised(axis: str, values: list[Any], base: CompareConfig) -> list[Any]:
    """``values`` as :meth:`CompareConfig.validated` normalises them; repeats refused."""
    out: list[Any] = []
    spelled: dict[Any, Any] = {}
    if axis in INT_AXES and None not in values:  # whole numbers: a range check, so the
        for value in sorted({min(values), max(values)}):  # smallest and largest will do
            _validated(base, axis, value)
        checked = values
    else:
        checked = [getattr(_validated(base, axis, value), axis) for value in values]
    for value, norm in zip(values, checked, strict=True):
        if norm in spelled:
            raise ConfigError(
                f"{option_name(axis)}: {spelled[norm]!r} and {value!r} are the same value "
                f"({_value_text(axis, norm)}); list it once"
            )
        spelled[norm] = value
        out.append(norm)
    return out


def _validated(base: CompareConfig, axis: str, value: Any) -> CompareConfig:
    try:
        return dataclasses.replace(base, **{axis: value}).validated()
    except ConfigError as exc:
        where = "" if str(value) in exc.message else f" (in {option_name(axis)} {value!r})"
        raise ConfigError(exc.message + where) from None


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
    """:func:`expand` from already parsed axis values (every case built: small grids only;
    ``tdcheck sweep`` plans through :class:`GridSpace`, which builds only what it runs)."""
    space = GridSpace(axes, base, max_cases=max_cases)
    return [space.config(i).validated() for i in range(len(space))]


#: How many case configurations :meth:`GridSpace.config` has built in this process (tests
#: check that planning a shard of a huge grid builds only that shard's cases).
CONFIGS_BUILT = 0


class GridSpace:
    """The cartesian product of the axes, never materialised: case ``i`` is decoded from its
    index (mixed radix, the last axis fastest), its name computed from the axis values alone.

    >>> space = GridSpace({"hidden": [4, 8], "seq": [3, 5]}, CompareConfig())
    >>> len(space), space.values(2)
    (4, {'hidden': 8, 'seq': 3})
    """

    def __init__(
        self, axes: dict[str, list[Any]], base: CompareConfig, *,
        max_cases: int | None = None, input_shape: tuple[int, ...] | None = None,
    ) -> None:  # fmt: skip
        self.axes = axes
        self.base = base
        self.input_shape = input_shape
        self.size = math.prod(len(values) for values in axes.values())
        if max_cases is not None and self.size > max_cases:
            sizes = " x ".join(str(len(v)) for v in axes.values() if len(v) > 1)
            raise ConfigError(
                f"the grid has {self.size} cases ({sizes}), over --max-cases {max_cases}; "
                "shrink it or raise --max-cases"
            )
        self.varying = varying_axes(axes)
        self._names = list(axes)
        self._lengths = [len(values) for values in axes.values()]
        self._parts: list[list[str]] | None = None
        self._rnn = self._hidden = 0
        self._trunk: list[list[str]] = []
        self._order: list[int] = []
        self._defaults = {
            "batch": DEFAULT_BATCH, "seq": DEFAULT_SEQ, "features": DEFAULT_FEATURES
        }  # fmt: skip

    def __len__(self) -> int:
        return self.size

    def values(self, index: int) -> dict[str, Any]:
        """Case ``index``'s axis values (only the axes given, in :data:`AXES` order)."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        picked: list[Any] = []
        for length, name in zip(reversed(self._lengths), reversed(self._names), strict=True):
            index, digit = divmod(index, length)
            picked.append(self.axes[name][digit])
        return dict(zip(self._names, reversed(picked), strict=True))

    def name(self, index: int) -> str:
        """Case ``index``'s name, as :func:`case_name` gives it, without building a config:
        each axis value's part of the name is worked out once (:meth:`_name_parts`)."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        if self._parts is None:
            self._parts = self._name_parts()
        digits = [0] * len(self._lengths)
        for position in range(len(self._lengths) - 1, -1, -1):
            index, digits[position] = divmod(index, self._lengths[position])
        rnn, hidden = digits[self._rnn], digits[self._hidden]
        parts = [self._trunk[rnn][hidden]]
        parts += [self._parts[p][digits[p]] for p in self._order]
        return "-".join(part for part in parts if part)

    def _name_parts(self) -> list[list[str]]:
        """Per axis, per value: the text it adds to a case name ("" for none)."""
        fields = {axis: getattr(self.base, axis) for axis in _NAME_FIELDS}
        for position, axis in enumerate(("batch", "seq", "features")):
            if self.input_shape is not None:
                fields[axis] = self.input_shape[position]
            elif fields[axis] is None:
                fields[axis] = self._defaults[axis]
        sized = {"features": "f", "units": "u", "seq": "s", "batch": "b"}
        extras = dict(_NAME_EXTRAS)
        table: list[list[str]] = []
        for axis in self._names:
            row = []
            for value in self.axes[axis]:
                if axis in ("batch", "seq", "features") and value is None:
                    value = fields[axis]
                if axis in sized:
                    row.append(f"{sized[axis]}{value}")
                elif axis == "dtype":
                    row.append(str(value))
                elif axis == "variants":
                    row.append("+".join(value))
                elif axis in extras and (axis in self.varying or value != getattr(_DEFAULTS, axis)):
                    row.append(f"{extras[axis]}={_value_text(axis, value)}")
                else:
                    row.append("")
            table.append(row)
        self._rnn, self._hidden = self._names.index("rnn"), self._names.index("hidden")
        self._trunk = [
            [_trunk_text(r, h, self.varying) for h in self.axes["hidden"]]
            for r in self.axes["rnn"]
        ]  # fmt: skip
        order = ["features", "units", "seq", "batch", "dtype", "variants"]
        order += [axis for axis, _ in _NAME_EXTRAS]
        self._order = [self._names.index(axis) for axis in order]
        return table

    def config(self, index: int) -> CompareConfig:
        """Case ``index`` as the grid gives it (sizes may be left to the input file)."""
        global CONFIGS_BUILT
        CONFIGS_BUILT += 1
        return dataclasses.replace(self.base, **self.values(index))


class _Fields:
    """Attribute access to a dict: what :func:`case_name` reads from a config."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


#: The config fields a case name reads.
_NAME_FIELDS = (*AXES, "batch", "seq", "features")


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


def _trunk_text(rnn: str, hidden: int, varying: Sequence[str]) -> str:
    if rnn == "none":  # no trunk: --hidden is unused, named only when it varies
        return f"none-h{hidden}" if "hidden" in varying else "none"
    return f"{rnn}{hidden}"


def case_name(cfg: CompareConfig, varying: Sequence[str] = ()) -> str:
    """A stable, readable name built from the configuration (JUnit, ``-k``).

    The sizes, trunk, dtype and variants are always in it; the other axes are added as
    ``key=value`` when they are in ``varying`` or differ from ``compare``'s default.

    >>> case_name(CompareConfig(seed=3).validated().resolve_sizes(None))
    'lstm5-f4-u2-s3-b1-float32-dense+time-distributed-seed=3'
    """
    parts = [_trunk_text(cfg.rnn, cfg.hidden, varying), f"f{cfg.features}", f"u{cfg.units}",
             f"s{cfg.seq}", f"b{cfg.batch}", cfg.dtype, "+".join(cfg.variants)]  # fmt: skip
    for axis, key in _NAME_EXTRAS:
        value = getattr(cfg, axis)
        if axis in varying or value != getattr(_DEFAULTS, axis):
            parts.append(f"{key}={_value_text(axis, value)}")
    return "-".join(parts)


def varying_axes(axes: dict[str, list[Any]]) -> list[str]:
    return [axis for axis, values in axes.items() if len(values) > 1]


# -- -k expressions -------------------------------------------------------------------------

#: The deepest ``-k`` nesting accepted (parentheses, or ``not`` repeated).
MAX_SELECT_DEPTH = 64
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
    depth = deepest = 0
    for token in tokens:  # the parser recurses per level: bound the levels, not the stack
        depth += (token == "(") - (token == ")")
        deepest = max(deepest, depth)
    deepest += tokens.count("not")  # each 'not' nests what follows it one level deeper
    if deepest > MAX_SELECT_DEPTH:
        raise ConfigError(
            f"-k: the expression nests {deepest} levels deep (parentheses and 'not's); "
            f"at most {MAX_SELECT_DEPTH}"
        )
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
    ``environment``: :func:`numerics_environment`; ``select``: the ``-k`` expression;
    ``shards``: N of ``--shard K/N`` (1 without); ``tdcheck``: the version. The axes hold
    normalised values: ``backend`` is the one that runs (``$KERAS_BACKEND`` resolved).
    ``hash`` is the SHA-256 of the rest as canonical JSON.
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
        "environment": numerics_environment(),
        "select": select,
        "shards": shards,
    }
    return {"hash": fingerprint_hash(parts), **parts}


#: Environment variables that change what a run computes (kernels, devices, determinism).
NUMERICS_VARIABLES = (
    "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "TF_XLA_FLAGS", "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC", "NVIDIA_TF32_OVERRIDE", "CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS",
    "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION",
)  # fmt: skip


def numerics_environment() -> dict[str, str | None]:
    """The :data:`NUMERICS_VARIABLES` as set for this run (None: unset). With the resolved
    backend (``axes.backend``, ``$KERAS_BACKEND`` included) and ``options.keras`` they make
    two runs the same sweep or not before anything runs; merge also compares what the runs
    report they used (device, versions)."""
    return {name: os.environ.get(name) for name in NUMERICS_VARIABLES}


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
