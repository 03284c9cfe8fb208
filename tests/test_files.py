"""Atomic writes: all or nothing, usual permissions, no temp files left."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from tdcheck.errors import ConfigError
from tdcheck.files import atomic_write_text, check_output_path, report_format_for, save_arrays


def test_atomic_write_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "r.json"
        atomic_write_text(str(path), "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "{}"


def test_a_failing_writer_leaves_nothing(tmp_path):
    path = tmp_path / "a.npz"

    class Boom:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_arrays(str(path), {"x": np.zeros(3), "y": Boom()})
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_whole(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("old content that is longer")
    atomic_write_text(str(path), "new")
    assert path.read_text() == "new"


def test_output_path_checks(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        check_output_path(str(tmp_path), "--output")
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_path(str(tmp_path / "missing" / "r.json"), "--output")
    check_output_path(str(tmp_path / "r.json"), "--output")
    assert report_format_for("x.JSON") == "json"
    assert report_format_for("x.markdown") == "markdown"
    assert report_format_for("x.txt") == "table"
