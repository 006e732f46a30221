"""Size limits checked from a file's size before it is read.

A file far larger than what it should hold is refused before any of it is read: a 5 GiB
``adapter_model.safetensors`` used to be loaded whole (14.8 GB peak) before its shapes were found
wrong, and a ``labels.json`` with a million labels took 2.4 GB before the run was refused.
:func:`read_json_object` reads a run folder's small JSON files that way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mept.errors import MeptError, exception_line

MAX_RUN_JSON_BYTES = 16 << 20  # run_config.json, labels.json, metrics.json, identity.json: kilobytes when sound


def check_file_size(path: str | os.PathLike, limit: int, what: str, fix: str) -> None:
    """Refuse ``path`` if it is larger than ``limit`` bytes, naming it, both sizes and the fix."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return  # the reader says the file is missing, in its own words
    if size > limit:
        raise MeptError(f"{path} is {size:,} bytes, far more than {what} needs (at most {limit:,}); {fix}")


def read_json_object(path: Path) -> dict[str, Any]:
    """A run folder's JSON file (``run_config.json``, ``labels.json``, ``metrics.json``) as a dict,
    or a one-line error naming the file (checked for size first: these files are kilobytes when sound)."""
    check_file_size(path, MAX_RUN_JSON_BYTES, "a run folder's settings file", "the run folder is damaged or edited")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MeptError(f"{path} is not readable JSON ({exception_line(exc)}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise MeptError(f"{path} must hold a JSON object; the run folder is damaged")
    return data
