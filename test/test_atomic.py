"""Atomic writes leave the old file intact on failure and the new one on success."""
import pytest

from synergy_ros.core.atomic import atomic_open, atomic_write_text


def test_atomic_write_replaces(tmp_path):
    """A completed write replaces the file and leaves no temporary files."""
    target = tmp_path / "sub" / "report.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    """An exception mid-write keeps the previous content and removes the temporary file."""
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "wb") as handle:
            handle.write(b"partial")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_atomic_write_honours_umask(tmp_path):
    """Files get the usual umask permissions, not mkstemp's private 0600."""
    import os

    old = os.umask(0o022)
    try:
        target = tmp_path / "model.pt"
        atomic_write_text(target, "x")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
