"""Read BIG-bench task files from the ``bigbench==1.0.0`` source tarball.

The tarball is fetched once at set-up (``pip download --no-deps
bigbench==1.0.0``) into ``<cache>/bigbench``. Its task files carry a canary
asking that they never enter training corpora, so we never copy them into the
repository: we stream the tar once and keep the task files we need in the
cache folder beside it.
"""

from __future__ import annotations

import gzip
import json
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

from mept.errors import MeptError
from mept.files.paths import cache_dir

TARBALL = "bigbench-1.0.0.tar.gz"
_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"
FIX = "delete {path} and rerun `bash scripts/setup.sh`"


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
    try:
        _stream_tasks(tar, wanted)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a truncated or corrupt download
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeptError(f"the BIG-bench tarball {tar} is damaged or truncated ({detail}); {FIX.format(path=tar)}") from None
    if wanted:
        raise MeptError(f"BIG-bench tasks not in {tar}: {', '.join(sorted(wanted.values()))}; if the task names are "
                        f"right, the tarball is incomplete: {FIX.format(path=tar)}")


def _stream_tasks(tar: Path, wanted: dict[str, str]) -> None:
    """Extract the ``wanted`` members (popped as found), each through a temp file and a rename."""
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


def read_task(task: str) -> dict[str, Any]:
    """The parsed ``task.json`` of a task path such as ``winowhy`` or ``arithmetic/2_digit_addition``."""
    extract_tasks([task])
    path = _extracted(task)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, ValueError) as exc:  # a cached copy cut short (disk full, killed mid-write)
        detail = str(exc).strip().splitlines()[0]
        raise MeptError(f"the cached BIG-bench task file {path} is damaged ({detail}); delete it and rerun "
                        f"(it is extracted again from the tarball)") from None
    if not isinstance(data, dict):
        raise MeptError(f"the cached BIG-bench task file {path} does not hold a task; delete it and rerun")
    return data
