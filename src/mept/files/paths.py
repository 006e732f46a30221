"""Where mept keeps things that must never enter the repository, and how a path the user typed is read."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Cache root: ``$MEPT_CACHE`` or ``~/.cache/mept``."""
    return Path(os.environ.get("MEPT_CACHE", Path.home() / ".cache" / "mept"))


def user_path(value: str | os.PathLike) -> Path:
    """A path the user typed, read as a shell would: ``~/x`` is in the home folder, for inputs and outputs alike."""
    return Path(os.path.expanduser(os.fspath(value)))
