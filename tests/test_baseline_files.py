"""Hostile ``--baseline`` archives: refused (ConfigError, exit 2) before anything is allocated."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest

from tdcheck.core import baseline
from tdcheck.errors import ConfigError


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def header_only(shape: tuple[int, ...], data: bytes = b"\0" * 64) -> bytes:
    """A .npy member whose header claims ``shape`` of float64 but holds ``data``."""
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': " + repr(shape) + ", }"
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + data


def meta(obj: object) -> bytes:
    return npy(np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8))


GOOD_META = {"report": {"config": {"hidden": 3}, "environment": {"backend": "tensorflow"}}}


def archive(path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compression) as out:
        for name, data in members.items():
            out.writestr(name, data)
    return str(path)


def base_members() -> dict[str, bytes]:
    return {
        "input.npy": npy(np.ones((1, 2, 4), np.float32)),
        "outputs/dense.npy": npy(np.zeros((1, 2, 2), np.float32)),
        "meta/report.json.npy": meta(GOOD_META),
    }


def test_a_good_archive_loads(tmp_path):
    loaded = baseline.load(archive(tmp_path / "b.npz", base_members()))
    assert sorted(loaded.arrays) == ["input", "outputs/dense"]
    assert loaded.arrays["input"].shape == (1, 2, 4)
    assert loaded.config == {"hidden": 3}


def test_a_header_claiming_petabytes_is_refused_before_allocating(tmp_path):
    members = {**base_members(), "outputs/dense.npy": header_only((10**15,))}
    with pytest.raises(ConfigError) as err:  # was: MemoryError, exit 3
        baseline.load(archive(tmp_path / "b.npz", members))
    assert "member 'outputs/dense.npy' claims shape (1000000000000000,) of float64" in str(
        err.value
    )
    assert "but holds 64" in str(err.value)


def test_the_uncompressed_size_is_capped_not_only_the_file_size(tmp_path):
    zeros = npy(np.zeros(2**17))  # 1 MiB of zeros deflates to about 1 KiB
    members = {**base_members(), "outputs/dense.npy": zeros}
    path = archive(tmp_path / "b.npz", members, zipfile.ZIP_DEFLATED)
    with pytest.raises(ConfigError, match=r"bytes uncompressed, over the 500,000 limit"):
        baseline.load(path, max_bytes=500_000)  # was: inflated and accepted


@pytest.mark.parametrize(
    "array", [np.array(["a", "b"]), np.array([(1, 2.0)], dtype="i4,f8")], ids=["str", "struct"]
)
def test_members_that_are_not_numbers_are_refused(tmp_path, array):
    members = {**base_members(), "outputs/dense.npy": npy(array)}
    with pytest.raises(ConfigError, match=r"member 'outputs/dense.npy' holds dtype .*not numbers"):
        baseline.load(archive(tmp_path / "b.npz", members))


def test_a_pickled_member_is_refused_without_unpickling(tmp_path):
    members = {**base_members(), "x.npy": b"\x80\x04K\x01."}  # pickle of 1, named .npy
    with pytest.raises(ConfigError, match="is not an archive written by --save-arrays"):
        baseline.load(archive(tmp_path / "b.npz", members))


def test_a_malformed_original_dtypes_is_exit_2(tmp_path):
    members = {
        **base_members(),
        "meta/report.json.npy": meta({**GOOD_META, "original_dtypes": [1]}),
    }
    with pytest.raises(ConfigError, match=r"malformed meta/report\.json"):  # was: AttributeError
        baseline.load(archive(tmp_path / "b.npz", members))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_an_input_saved_in_the_compute_dtype_matches_the_same_input(dtype):
    import ml_dtypes

    from tdcheck.core.config import CompareConfig
    from tdcheck.core.inputs import make_input

    cfg = CompareConfig(hidden=3, seq=2, dtype=dtype, input="random")
    x = make_input("random", batch=1, seq=2, features=4, seed=0)
    stored = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    saved = baseline.Baseline("b.npz", {"input": x.astype(stored)}, cfg.to_dict())
    baseline.check_matches(saved, cfg, x)  # was: "made from another input" for bfloat16
    y = x.copy()
    y[0, 1, 2] += 1.0
    with pytest.raises(ConfigError, match=r"its values differ: 1 of 8 elements"):
        baseline.check_matches(saved, cfg, y)
