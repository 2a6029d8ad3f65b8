"""Where INCLG keeps files it creates for the user (converted weights), outside any repository."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The INCLG data folder: $INCLG_HOME if set, else ~/.cache/inclg.

    Only a path is returned; nothing is created here, so asking never touches the disk.
    """
    home = os.environ.get("INCLG_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "inclg"
