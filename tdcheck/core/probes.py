"""Probe shapes for exported models, chosen to catch the TimeDistributed export bug by
construction (NumPy only).

Keras 3's ``TimeDistributed`` on a variable-length time axis, traced for export, loops
over the *batch* size instead of the sequence length: the artifact returns
``(batch, batch, ...)`` or raises whenever batch != length, and is right when they happen
to be equal. So the default probes never have batch == length, have batch > length and
batch < length, batch 1, and at least three lengths; every other variable axis gets
sizes that differ from both.

>>> [p.label for p in probe_shapes([("x", (None, None, 4), "float32")])]
['batch 3, seq 5', 'batch 5, seq 2', 'batch 1, seq 4', 'batch 2, seq 7']
>>> probe_shapes([("x", (None, None, 4), "float32")])[1].shapes
[(5, 2, 4)]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Spec = tuple[str, tuple[int | None, ...], str]

#: (batch, sequence length): batch < seq, batch > seq, batch 1, and four lengths.
DEFAULT_PROBES: tuple[tuple[int, int], ...] = ((3, 5), (5, 2), (1, 4), (2, 7))
#: Sizes tried, in order, for the other variable axes (image height, width...).
OTHER_SIZES = (6, 4, 3, 5, 7, 8, 9)
MAX_PROBE_SIZE = 4096


@dataclass(frozen=True)
class Probe:
    """One probe: its label and the full shape of each input."""

    label: str
    batch: int
    seq: int
    shapes: list[tuple[int, ...]]


def parse_probes(text: str) -> list[tuple[int, int]]:
    """``"3x5,5x2"`` -> ``[(3, 5), (5, 2)]`` (batch x sequence length)."""
    from tdcheck.errors import ConfigError

    pairs = []
    for item in (t.strip() for t in text.split(",")):
        match = re.fullmatch(r"([0-9]+)\s*[xX]\s*([0-9]+)", item)
        if not match:
            raise ConfigError(f"--probes: expected BATCHxLENGTH pairs like 3x5,5x2, got {item!r}")
        batch, seq = int(match.group(1)), int(match.group(2))
        if not (1 <= batch <= MAX_PROBE_SIZE and 1 <= seq <= MAX_PROBE_SIZE):
            raise ConfigError(f"--probes: sizes must be 1 to {MAX_PROBE_SIZE}, got {item!r}")
        pairs.append((batch, seq))
    return pairs


def weak_probes(pairs: Sequence[tuple[int, int]]) -> str | None:
    """Why a probe list cannot catch the bug class, or None when it can."""
    if all(b == s for b, s in pairs):
        return "every probe has batch == length, where the broken exports happen to be right"
    if not any(b > s for b, s in pairs) or not any(b < s for b, s in pairs):
        return "give batch > length and batch < length: one shows wrong shapes, the other a raise"
    return None


def probe_shapes(
    specs: Sequence[Spec], pairs: Sequence[tuple[int, int]] = DEFAULT_PROBES
) -> list[Probe]:
    """One :class:`Probe` per ``(batch, seq)`` pair, for inputs described by ``specs``.

    Axis 0, when unknown, gets the batch; axis 1, when unknown, the length; any other
    unknown axis a size from :data:`OTHER_SIZES` that is neither (the same for every
    input, so inputs that must agree do).
    """
    probes = []
    for batch, seq in pairs:
        others: dict[int, int] = {}
        sizes = [s for s in OTHER_SIZES if s not in (batch, seq)]
        shapes = []
        for _, shape, _ in specs:
            full = []
            for axis, dim in enumerate(shape):
                if dim is not None:
                    full.append(int(dim))
                elif axis == 0:
                    full.append(batch)
                elif axis == 1:
                    full.append(seq)
                else:
                    if axis not in others:
                        others[axis] = sizes[len(others) % len(sizes)]
                    full.append(others[axis])
            shapes.append(tuple(full))
        varies_seq = any(len(s) > 1 and s[1] is None for _, s, _ in specs)
        label = f"batch {batch}, seq {seq}" if varies_seq else f"batch {batch}"
        label += "".join(f", axis {axis} {size}" for axis, size in sorted(others.items()))
        probes.append(Probe(label=label, batch=batch, seq=seq, shapes=shapes))
    unique: dict[tuple[tuple[int, ...], ...], Probe] = {}
    for p in probes:  # a fixed length makes (3, 5) and (3, 7) the same probe
        unique.setdefault(tuple(p.shapes), p)
    return list(unique.values())


def variable_time_axis(input_shape: Sequence[object] | None) -> bool:
    """True for a ``TimeDistributed`` input shape whose time axis (axis 1) is unknown."""
    return input_shape is not None and len(input_shape) > 1 and input_shape[1] is None


def export_warning(layers: Sequence[tuple[str, Sequence[object] | None]]) -> str | None:
    """scan's one line for a model whose exports are affected (``(path, input_shape)`` of
    each TimeDistributed layer), or None."""
    hit = [path.rsplit("/", 1)[-1] for path, shape in layers if variable_time_axis(shape)]
    if not hit:
        return None
    names = ", ".join(hit[:3]) + (f" and {len(hit) - 3} more" if len(hit) > 3 else "")
    return (
        f"exports affected: model.export() (SavedModel, ONNX, LiteRT) is wrong whenever batch "
        f"!= length (TimeDistributed on a variable-length axis: {names}); tdcheck export "
        "writes a right one"
    )
