"""Size limits checked from a file's size before it is read.

A file far larger than what it should hold is refused before any of it is read: a 5 GiB
``adapter_model.safetensors`` used to be loaded whole (14.8 GB peak) before its shapes were found
wrong, and a ``labels.json`` with a million labels took 2.4 GB before the run was refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from mept.errors import MeptError

MAX_RUN_JSON_BYTES = 16 << 20  # run_config.json, labels.json, metrics.json, identity.json: kilobytes when sound


def check_file_size(path: str | os.PathLike, limit: int, what: str, fix: str) -> None:
    """Refuse ``path`` if it is larger than ``limit`` bytes, naming it, both sizes and the fix."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return  # the reader says the file is missing, in its own words
    if size > limit:
        raise MeptError(f"{path} is {size:,} bytes, far more than {what} needs (at most {limit:,}); {fix}")
