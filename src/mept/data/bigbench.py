"""Read BIG-bench task files from a BIG-bench archive or checkout.

The source was the ``bigbench==1.0.0`` sdist, fetched once at set-up (``pip download --no-deps
bigbench==1.0.0``) into ``<cache>/bigbench``. PyPI stopped serving that release (seen 2026-12-05:
the index lists only 0.0.1 and 1.0.0's files answer 403), so we read any archive that holds
``.../bigbench/benchmark_tasks/<task>/task.json`` -- the sdist, or GitHub's ``BIG-bench-main.tar.gz``
-- or a checkout folder, named by ``$MEPT_BIGBENCH_TAR``. Its task files carry a canary asking that
they never enter training corpora, so we never copy them into the repository: we stream the
archive once and keep the task files we need in the cache folder beside it.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from mept.errors import MeptError, exception_line
from mept.files.archives import DAMAGED_ARCHIVE_ERRORS
from mept.files.paths import cache_dir

TARBALL = "bigbench-1.0.0.tar.gz"
_TASKS_DIR = "bigbench/benchmark_tasks/"  # under the archive's top folder (bigbench-1.0.0/, BIG-bench-main/)
FIX = "delete {path} and fetch it again"
WHERE = ("PyPI no longer serves bigbench==1.0.0: download https://github.com/google/BIG-bench/archive/refs/heads/main.tar.gz "
         "(or clone the repository) and set MEPT_BIGBENCH_TAR to that file or folder")


def tarball_path() -> Path:
    """The archive or checkout: ``$MEPT_BIGBENCH_TAR`` or ``<cache>/bigbench/bigbench-1.0.0.tar.gz``."""
    env = os.environ.get("MEPT_BIGBENCH_TAR")
    return Path(env) if env else cache_dir() / "bigbench" / TARBALL


def _extracted(task: str) -> Path:
    return cache_dir() / "bigbench" / "tasks" / task / "task.json"


def extract_tasks(tasks: list[str]) -> None:
    """Read the archive (or checkout) once and keep ``task.json`` of every task not yet extracted."""
    wanted = {f"{t}/task.json": t for t in tasks if not _extracted(t).exists()}
    if not wanted:
        return
    source = tarball_path()
    if not source.exists():
        raise MeptError(f"BIG-bench data not found at {source}; {WHERE}")
    if source.is_dir():
        _copy_tasks(source, wanted)
    else:
        try:
            _stream_tasks(source, wanted)
        except DAMAGED_ARCHIVE_ERRORS as exc:  # a truncated or corrupt download
            detail = exception_line(exc)
            raise MeptError(f"the BIG-bench archive {source} is damaged or truncated ({detail}); "
                            f"{FIX.format(path=source)}") from None
    if wanted:
        raise MeptError(f"BIG-bench tasks not in {source}: {', '.join(sorted(wanted.values()))}; if the task names are "
                        f"right, the archive is incomplete: {FIX.format(path=source)}")


def _task_key(member: str) -> str | None:
    """``winowhy/task.json`` for ``<top>/bigbench/benchmark_tasks/winowhy/task.json``, whatever the top folder."""
    head, sep, tail = ("/" + member.removeprefix("./")).partition("/" + _TASKS_DIR)
    return tail if sep and "/" not in head.strip("/") else None


def _keep(task: str, data: bytes) -> None:
    dest = _extracted(task)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)


def _copy_tasks(root: Path, wanted: dict[str, str]) -> None:
    """From a checkout: its root, its ``bigbench/`` or its ``benchmark_tasks/`` folder."""
    for base in (root / _TASKS_DIR, root / "benchmark_tasks", root):
        for key in [k for k in wanted if (base / k).is_file()]:
            _keep(wanted.pop(key), (base / key).read_bytes())


def _stream_tasks(tar: Path, wanted: dict[str, str]) -> None:
    """Extract the ``wanted`` members (popped as found), each through a temp file and a rename."""
    with tarfile.open(tar, "r|*") as stream:
        for member in stream:
            key = _task_key(member.name)
            task = wanted.pop(key, None) if key is not None else None
            if task is None:
                continue
            with stream.extractfile(member) as src:  # type: ignore[union-attr]
                _keep(task, src.read())
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
        detail = exception_line(exc)
        raise MeptError(f"the cached BIG-bench task file {path} is damaged ({detail}); delete it and rerun "
                        f"(it is extracted again from the archive)") from None
    if not isinstance(data, dict):
        raise MeptError(f"the cached BIG-bench task file {path} does not hold a task; delete it and rerun")
    return data
