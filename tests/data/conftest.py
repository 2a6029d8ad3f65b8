"""Shared fixtures for the data tests: a few real face photos laid out like a user's folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def photo_dirs(tmp_path: Path) -> list[Path]:
    """Two source folders, ``celeba`` (2 photos) and ``utkface`` (an infant and an adult)."""
    folders = []
    for name in ("celeba", "utkface"):
        folder = tmp_path / "photos" / name
        folder.mkdir(parents=True)
        for photo in sorted(FIXTURES.glob(f"{name}_*")):
            shutil.copy(photo, folder / photo.name.removeprefix(f"{name}_"))
        folders.append(folder)
    return folders


@pytest.fixture
def face_points() -> np.ndarray:
    """The alignment template: a plausible, exactly symmetric face in a 256 x 256 crop."""
    from inclg.data.align import template

    return template(256).astype(np.float32)
