import os
import stat

import pytest

from inclg.io.files import atomic_path, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_file_rewritten_privately_gets_the_umask_mode(tmp_path):
    # safetensors' save_file creates its file 0600; the result must still be readable by others
    old = os.umask(0o022)
    try:
        target = tmp_path / "model.safetensors"
        with atomic_path(target) as tmp:
            tmp.unlink()
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
            os.write(fd, b"weights")
            os.close(fd)
        assert target.read_bytes() == b"weights"
        assert _mode(target) == 0o644
    finally:
        os.umask(old)


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
