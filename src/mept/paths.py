"""Where mept keeps things that must never enter the repository."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Cache root: ``$MEPT_CACHE`` or ``~/.cache/mept``."""
    return Path(os.environ.get("MEPT_CACHE", Path.home() / ".cache" / "mept"))
