"""Read BIG-bench task files from the ``bigbench==1.0.0`` source tarball.

The tarball is fetched once at set-up (``pip download --no-deps
bigbench==1.0.0``) into ``<cache>/bigbench``. Its task files carry a canary
asking that they never enter training corpora, so we never copy them into the
repository: we stream the tar once and keep the task files we need in the
cache folder beside it.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from mept.errors import MeptError
from mept.paths import cache_dir

TARBALL = "bigbench-1.0.0.tar.gz"
_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"


def tarball_path() -> Path:
    """The sdist location: ``$MEPT_BIGBENCH_TAR`` or ``<cache>/bigbench/bigbench-1.0.0.tar.gz``."""
    env = os.environ.get("MEPT_BIGBENCH_TAR")
    return Path(env) if env else cache_dir() / "bigbench" / TARBALL


def _extracted(task: str) -> Path:
    return cache_dir() / "bigbench" / "tasks" / task / "task.json"


def extract_tasks(tasks: list[str]) -> None:
    """Stream the tarball once and keep ``task.json`` of every task not yet extracted."""
    wanted = {f"{_PREFIX}{t}/task.json": t for t in tasks if not _extracted(t).exists()}
    if not wanted:
        return
    tar = tarball_path()
    if not tar.exists():
        raise MeptError(
            f"BIG-bench tarball not found at {tar}; run `pip download --no-deps -d "
            f"{tar.parent} bigbench==1.0.0` (scripts/setup.sh does this) or set MEPT_BIGBENCH_TAR"
        )
    with tarfile.open(tar, "r|gz") as stream:
        for member in stream:
            task = wanted.pop(member.name, None)
            if task is None:
                continue
            dest = _extracted(task)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            with stream.extractfile(member) as src, open(tmp, "wb") as out:  # type: ignore[union-attr]
                out.write(src.read())
            tmp.replace(dest)
            if not wanted:
                break
    if wanted:
        raise MeptError(f"BIG-bench tasks not in {tar.name}: {', '.join(sorted(wanted.values()))}")


def read_task(task: str) -> dict[str, Any]:
    """The parsed ``task.json`` of a task path such as ``winowhy`` or ``arithmetic/2_digit_addition``."""
    extract_tasks([task])
    with open(_extracted(task), encoding="utf-8") as f:
        return json.load(f)
