"""The options of a comparison, their defaults and their validation.

Nothing here imports NumPy or TensorFlow: validation runs before anything heavy
is loaded, so a bad option is answered in milliseconds.

>>> cfg = CompareConfig(hidden=8).validated()
>>> cfg.hidden, cfg.variants
(8, ('dense', 'time-distributed'))
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from tdcheck.core.backends import (
    BACKENDS,
    TF32_CHOICES,
    check_supported,
    default_backend,
    engine_name,
    parse_engines,
)
from tdcheck.core.tolerances import DEFAULT_TOLERANCES, default_tolerances
from tdcheck.core.variants import VARIANT_NAMES
from tdcheck.errors import ConfigError

DEFAULT_FEATURES = 4
DEFAULT_SEQ = 3
DEFAULT_BATCH = 1
DEFAULT_MAX_MEMORY = 4 * 1024**3  # bytes
MAX_MEMORY = 1024**5  # the largest --max-memory accepted (1 PiB)

RNN_CHOICES = ("lstm", "gru", "simple-rnn", "none")
WEIGHT_MODES = ("shared", "independent")
DEVICE_CHOICES = ("auto", "cpu", "gpu", "both")
OPTIMIZERS = ("sgd", "adam")
TIME_DIMS = ("static", "dynamic")
MAX_TRAIN_STEPS = 100_000
#: Seeds go to NumPy's legacy seeding through keras.utils.set_random_seed: 0..2**32 - 1.
MAX_SEED = 2**32 - 1
#: The largest finite value of each dtype (mixed_float16 computes in float16): an
#: initializer value beyond it would overflow to inf before anything is compared.
DTYPE_MAX = {
    "float16": 65504.0,
    "mixed_float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}
FORMAT_CHOICES = ("table", "json", "markdown")
DTYPE_CHOICES = tuple(DEFAULT_TOLERANCES)
#: Head activations; the NumPy oracle implements each of these.
ACTIVATIONS = (
    "linear",
    "relu",
    "tanh",
    "sigmoid",
    "softmax",
    "softplus",
    "elu",
    "selu",
    "swish",
    "gelu",
    "exponential",
)
#: Keras initializer names accepted by ``--initializer``; the value after ``:``
#: is the parameter named here (None: the initializer takes no value).
INITIALIZERS: dict[str, str | None] = {
    "constant": "value",
    "zeros": None,
    "ones": None,
    "random_normal": "stddev",
    "truncated_normal": "stddev",
    "random_uniform": "limit",
    "glorot_uniform": None,
    "glorot_normal": None,
    "he_uniform": None,
    "he_normal": None,
    "lecun_uniform": None,
    "lecun_normal": None,
    "orthogonal": None,
    "variance_scaling": None,
}
#: Gate count per trunk, for the memory estimate.
_GATES = {"lstm": 4, "gru": 3, "simple-rnn": 1, "none": 0}


@dataclass(frozen=True)
class InitializerSpec:
    """A parsed ``--initializer`` value such as ``constant:0.1``."""

    name: str
    value: float | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value:g}"


def parse_initializer(spec: str, option: str = "--initializer") -> InitializerSpec:
    """Parse ``NAME`` or ``NAME:VALUE``; raise :class:`ConfigError` when unknown.

    >>> parse_initializer("constant:0.1")
    InitializerSpec(name='constant', value=0.1)
    """
    name, sep, raw = spec.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    if name not in INITIALIZERS:
        raise ConfigError(
            f"{option}: unknown initializer {spec!r}{did_you_mean(name, tuple(INITIALIZERS))}; "
            f"choose from {', '.join(INITIALIZERS)}"
        )
    param = INITIALIZERS[name]
    if not sep:
        if name == "constant":
            raise ConfigError(f"{option}: 'constant' needs a value, e.g. constant:0.1")
        return InitializerSpec(name)
    if param is None:
        raise ConfigError(f"{option}: initializer {name!r} takes no value (got {spec!r})")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{option}: {raw!r} is not a number (in {spec!r})") from None
    if not math.isfinite(value):
        raise ConfigError(f"{option}: the value must be finite (got {spec!r})")
    if param in ("stddev", "limit") and value <= 0:
        raise ConfigError(f"{option}: the {param} of {name!r} must be > 0 (got {spec!r})")
    return InitializerSpec(name, value)


def parse_variants(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Parse a comma list of variant names, keeping order and refusing repeats."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = tuple(item.strip().lower() for item in items if item.strip())
    if not names:
        raise ConfigError("--variants: give at least one variant")
    for name in names:
        if name not in VARIANT_NAMES:
            raise ConfigError(
                f"--variants: unknown variant {name!r}{did_you_mean(name, VARIANT_NAMES)}; "
                f"choose from {', '.join(VARIANT_NAMES)}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"--variants: a variant is listed twice in {','.join(names)!r}")
    return names


_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_memory(spec: str | int) -> int:
    """Parse a memory size such as ``4GiB``, ``512MB`` or ``1000000`` into bytes.

    >>> parse_memory("2GiB")
    2147483648
    """
    if isinstance(spec, int):
        value = spec
    else:
        match = _SIZE_RE.match(spec)
        if not match:
            raise ConfigError(f"--max-memory: cannot read {spec!r} as a size (e.g. 8GiB, 500MB)")
        number, prefix, binary = match.groups()
        base = 1024 if binary else 1000
        power = " kmgt".index(prefix.lower() or " ")
        amount = float(number) * base**power
        if not math.isfinite(amount) or amount > MAX_MEMORY:
            raise ConfigError(f"--max-memory: {spec!r} is beyond any machine (at most 1 PiB)")
        value = int(amount)
    if value > MAX_MEMORY:
        raise ConfigError(f"--max-memory: {spec!r} is beyond any machine (at most 1 PiB)")
    if value <= 0:
        raise ConfigError(f"--max-memory: must be > 0 (got {spec!r})")
    return value


def format_bytes(n: float) -> str:
    """Human-readable size: ``format_bytes(3 * 1024**3) == '3.0 GiB'``; absurd sizes in
    exponent form (``format_bytes(1e30) == '8.88e+14 PiB'``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            if unit == "B":
                return f"{n:.0f} {unit}"
            return f"{n:.1f} {unit}" if n < 10_000 else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class CompareConfig:
    """Every option of ``tdcheck compare``.

    ``features``, ``seq`` and ``batch`` may be ``None``: then they come from the
    input file, or from the defaults (4, 3, 1). :meth:`validated` checks every
    field and returns a normalised copy; :meth:`resolve_sizes` fills the sizes.
    """

    features: int | None = None
    hidden: int = 5
    units: int = 2
    seq: int | None = None
    batch: int | None = None
    rnn: str = "lstm"
    initializer: str = "constant:0.1"
    bias_initializer: str = "zeros"
    activation: str = "linear"
    variants: tuple[str, ...] = ("dense", "time-distributed")
    weights: str = "shared"
    input: str = "ones"
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    atol: float | None = None
    rtol: float | None = None
    exact: bool = False
    equal_nan: bool = False
    power: bool = False
    oracle: bool = True
    max_memory: int = DEFAULT_MAX_MEMORY
    grad: bool = False
    train_steps: int = 0
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    lengths: tuple[int, ...] | None = None
    deterministic: bool = False
    time_dim: str = "static"
    #: Keras 3 backend; None: ``$KERAS_BACKEND`` when set, else tensorflow.
    backend: str | None = None
    #: Keras major version: 3, or 2 for tf_keras (TensorFlow only).
    keras: int = 3
    #: Run on each of these engines (backends and ``keras2``) and compare them.
    backends: tuple[str, ...] | None = None
    #: TF32 for float32 matmuls on a GPU: default (the framework's), on or off.
    tf32: str = "default"
    #: An ``--save-arrays`` archive to judge this run against.
    baseline: str | None = None

    # -- validation -----------------------------------------------------------------
    def validated(self) -> CompareConfig:
        """Check every option; return a copy with normalised values.

        Raises :class:`ConfigError` (exit 2) with a one-line message.
        """
        for name in ("features", "hidden", "units", "seq", "batch"):
            value = getattr(self, name)
            if value is None and name in ("features", "seq", "batch"):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"--{name}: must be a whole number (got {value!r})")
            if value <= 0:
                raise ConfigError(f"--{name}: must be > 0 (got {value})")
        check_choice("--rnn", self.rnn, RNN_CHOICES)
        check_choice("--weights", self.weights, WEIGHT_MODES)
        check_choice("--device", self.device, DEVICE_CHOICES)
        check_choice("--dtype", self.dtype, DTYPE_CHOICES)
        check_choice("--activation", self.activation, ACTIVATIONS)
        kernel = parse_initializer(self.initializer, "--initializer")
        bias = parse_initializer(self.bias_initializer, "--bias-initializer")
        variants = parse_variants(self.variants)
        if len(variants) == 1 and not self.oracle:
            raise ConfigError(
                "nothing to compare: one variant and --no-oracle; add a variant or the oracle"
            )
        if (self.atol is None) != (self.rtol is None):
            raise ConfigError("--atol and --rtol go together: give both or neither")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"--{name}: must be a finite number >= 0 (got {value})")
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"--seed: must be a whole number 0..{MAX_SEED} (got {seed!r})")
        for option, spec in (("--initializer", kernel), ("--bias-initializer", bias)):
            top = DTYPE_MAX[self.dtype]
            if spec.value is not None and abs(spec.value) > top:
                raise ConfigError(
                    f"{option}: {spec.value:g} overflows {self.dtype} (largest finite {top:g})"
                )
        if self.input not in ("ones", "random") and not os.path.isfile(self.input):
            if os.path.exists(self.input):
                raise ConfigError(f"--input: {self.input!r} is not a file")
            raise ConfigError(f"--input: no such file {self.input!r} (or use ones, random)")
        max_memory = parse_memory(self.max_memory)
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_choice("--time-dim", self.time_dim, TIME_DIMS)
        steps = self.train_steps
        if (
            isinstance(steps, bool)
            or not isinstance(steps, int)
            or not 0 <= steps <= MAX_TRAIN_STEPS
        ):
            raise ConfigError(
                f"--train-steps: must be a whole number 0..{MAX_TRAIN_STEPS} (got {steps!r})"
            )
        lr = self.learning_rate
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"--learning-rate: must be a finite number > 0 (got {lr!r})")
        lengths = parse_lengths(self.lengths) if self.lengths is not None else None
        if self.keras not in (2, 3):
            raise ConfigError(f"--keras: 2 or 3 (got {self.keras!r})")
        # $KERAS_BACKEND picks a Keras 3 backend; Keras 2 (tf_keras) runs on TensorFlow only
        # and ignores it, so it never makes --keras 2 fail.
        backend = self.backend if self.backend is not None else (
            "tensorflow" if self.keras == 2 else default_backend()
        )  # fmt: skip
        check_choice("--backend", backend, BACKENDS)
        engine_name(backend, self.keras)
        backends = parse_engines(self.backends) if self.backends is not None else None
        if backends is not None and (self.backend is not None or self.keras != 3):
            raise ConfigError("--backends runs several backends: leave out --backend and --keras")
        for engine in backends or (engine_name(backend, self.keras),):
            check_supported(engine, time_dim=self.time_dim, train_steps=steps, dtype=self.dtype)
        check_choice("--tf32", self.tf32, TF32_CHOICES)
        if self.baseline is not None and not os.path.isfile(self.baseline):
            raise ConfigError(f"--baseline: no such file {self.baseline!r}")
        return dataclasses.replace(
            self,
            backend=None if backends else backend,
            backends=backends,
            initializer=str(kernel),
            bias_initializer=str(bias),
            variants=variants,
            max_memory=max_memory,
            lengths=lengths,
        )

    def resolve_sizes(self, input_shape: tuple[int, ...] | None) -> CompareConfig:
        """Fill ``batch``, ``seq``, ``features`` from an input file's shape or defaults.

        An explicitly given size that disagrees with the file is a :class:`ConfigError`.
        """
        if input_shape is None:
            return dataclasses.replace(
                self,
                batch=self.batch or DEFAULT_BATCH,
                seq=self.seq or DEFAULT_SEQ,
                features=self.features or DEFAULT_FEATURES,
            )
        batch, seq, features = input_shape
        for name, given, actual in (
            ("batch", self.batch, batch),
            ("seq", self.seq, seq),
            ("features", self.features, features),
        ):
            if given is not None and given != actual:
                raise ConfigError(
                    f"--{name} {given} disagrees with the input file {self.input!r}, "
                    f"whose shape (batch, seq, features) is {tuple(input_shape)}"
                )
        return dataclasses.replace(self, batch=batch, seq=seq, features=features)

    def check_lengths(self) -> None:
        """With sizes resolved: one length per batch row, each in 1..seq (else exit 2)."""
        if self.lengths is None:
            return
        assert self.batch and self.seq
        if len(self.lengths) != self.batch:
            raise ConfigError(
                f"--lengths: {len(self.lengths)} length(s) for a batch of {self.batch}; "
                "give one per batch row"
            )
        for length in self.lengths:
            if not 1 <= length <= self.seq:
                raise ConfigError(
                    f"--lengths: length {length} is out of range 1..{self.seq} (the --seq)"
                )

    # -- derived values ---------------------------------------------------------------
    @property
    def engine(self) -> str:
        """The engine that runs this config: the backend, or ``keras2`` with ``keras=2``."""
        return engine_name(self.backend or default_backend(), self.keras)

    @property
    def head_input_size(self) -> int:
        """What the heads read: the trunk's units, or the features with ``rnn='none'``."""
        assert self.features is not None
        return self.features if self.rnn == "none" else self.hidden

    @property
    def kernel_initializer(self) -> InitializerSpec:
        return parse_initializer(self.initializer)

    @property
    def bias_initializer_spec(self) -> InitializerSpec:
        return parse_initializer(self.bias_initializer, "--bias-initializer")

    def tolerances(self) -> tuple[float, float]:
        """``(atol, rtol)``: the given ones, or the dtype's defaults."""
        if self.atol is not None and self.rtol is not None:
            return self.atol, self.rtol
        return default_tolerances(self.dtype)

    def estimated_bytes(self) -> int:
        """A generous estimate of the memory one run needs, before allocating it.

        Counts the input, the trunk's gate pre-activations and outputs, every head's
        output, the NumPy oracle's float64 copies and Keras's per-timestep
        intermediates, with a factor 3 for framework copies.
        """
        assert self.batch and self.seq and self.features
        rows = self.batch * self.seq
        per_row = (
            self.features
            + (_GATES[self.rnn] + 2) * self.hidden * (self.rnn != "none")
            + 3 * len(self.variants) * self.units
        )
        params = self.head_input_size * self.units * len(self.variants)
        if self.rnn != "none":
            params += _GATES[self.rnn] * self.hidden * (self.features + self.hidden + 2)
        # float32 in Keras, float64 in the oracle, x3 for framework copies; gradients
        # and training keep activations for the backward pass and one model per variant.
        factor = 3 * (1 + self.grad + (len(self.variants) if self.train_steps else 0))
        return int(factor * (4 + 8) * (rows * per_row + params))

    def check_memory(self) -> None:
        """Refuse a configuration whose estimate exceeds ``max_memory`` (exit 2)."""
        need = self.estimated_bytes()
        if need > self.max_memory:
            raise ConfigError(
                f"this configuration needs about {format_bytes(need)}, over the "
                f"{format_bytes(self.max_memory)} limit; shrink it or raise --max-memory"
            )

    def to_dict(self) -> dict[str, Any]:
        """Every option as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["variants"] = list(self.variants)
        if self.backends is not None:
            out["backends"] = list(self.backends)
        return out


def parse_lengths(spec: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Parse ``--lengths 3,2,1`` into a tuple of ints (range is checked later).

    >>> parse_lengths("3, 2,1")
    (3, 2, 1)
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        lengths = tuple(int(str(item).strip()) for item in items if str(item).strip())
    except ValueError:
        raise ConfigError(f"--lengths: {spec!r} is not a comma list of whole numbers") from None
    if not lengths:
        raise ConfigError("--lengths: give one length per batch row, e.g. 3,2,1")
    return lengths


def did_you_mean(value: str, choices: tuple[str, ...] | list[str]) -> str:
    """``" (did you mean 'dense'?)"`` for the closest choice, or ``""`` when none is close.

    >>> did_you_mean("dens", ("dense", "conv1d"))
    " (did you mean 'dense'?)"
    """
    close = difflib.get_close_matches(str(value).lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keywords(function: str, given: Any, allowed: Any) -> None:
    """Raise :class:`TypeError`, as Python would, for a keyword ``function`` does not take,
    with the closest name (Python 3.10-3.12 suggest none for keywords).

    >>> check_keywords("compare", {"hiden": 5}, ("hidden", "seq"))
    Traceback (most recent call last):
    TypeError: compare() got an unexpected keyword argument 'hiden' (did you mean 'hidden'?)
    """
    names = tuple(allowed)
    for name in given:
        if name not in names:
            raise TypeError(
                f"{function}() got an unexpected keyword argument {name!r}"
                f"{did_you_mean(name, names)}"
            )


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{option}: unknown value {value!r}{did_you_mean(value, choices)}; "
            f"choose from {', '.join(choices)}"
        )
