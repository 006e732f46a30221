"""The output folder of a run: one writer at a time, and an old run is never lost to a new one.

Three guarantees, each a function here so ``train`` only calls them:

- :func:`check_writable` -- ``--output`` that is a file or sits in a read-only folder is refused
  before a model is loaded, not after.
- :func:`output_lock` -- a lock file beside the folder (``.NAME.lock``) holds the writer's pid and
  host; a second writer is refused, a lock whose process is gone is taken over.
- :func:`move_aside` / :func:`settle` -- ``--overwrite`` first moves the old run to
  ``.NAME.replaced`` beside the folder; the old run is deleted only once the new one has written
  something resumable (a checkpoint or ``metrics.json``), and put back if the new one fails
  before that. A run killed in between is put back by the next run that takes the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mept.errors import MeptError, warn
from mept.file_limits import MAX_RUN_JSON_BYTES, check_file_size

LOCK_SUFFIX = ".lock"
REPLACED_SUFFIX = ".replaced"


def sibling(out: Path, suffix: str) -> Path:
    """``runs/latest`` -> ``runs/.latest<suffix>``: bookkeeping beside the folder, not inside it."""
    return out.parent / f".{out.name}{suffix}"


def check_writable(out: Path, flag: str = "--output") -> None:
    """Refuse an output folder that is a file, or lies under a file or a folder we cannot write."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MeptError(f"{flag} {out} is a file, not a folder; pick a folder path")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise MeptError(f"{flag} {out} lies under {probe}, which is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MeptError(f"{flag} {out}: no permission to write in {probe}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``out`` while a run writes there; refuse a live second writer."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = sibling(out, LOCK_SUFFIX)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder and holder.get("host") == me["host"] and holder.get("pid") == me["pid"]:
                yield  # re-entered by the same process (a seed of a multi-seed run): already ours
                return
            live = holder is not None and (holder.get("host") != me["host"] or _pid_alive(int(holder.get("pid", -1))))
            if live:
                raise MeptError(
                    f"output folder {out} is in use by another mept run (pid {holder['pid']} on {holder['host']}); "
                    f"wait for it to end or pick another --output (if that process is gone, delete {lock})"
                )
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise MeptError(f"could not take the lock {lock}; delete it if no mept run is writing to {out}")
    try:
        recover(out)
        yield
    finally:
        if _read_lock(lock) == me:
            lock.unlink(missing_ok=True)


def has_progress(out: Path) -> bool:
    """Does ``out`` hold something worth keeping: a finished run or a resumable checkpoint?"""
    out = Path(out)
    if not out.is_dir():
        return False
    if (out / "metrics.json").exists():
        return True
    return any(out.glob("checkpoint*/trainer_state.json")) or any(out.glob("*/checkpoint*/trainer_state.json"))


# What ``mept train`` / ``eval`` / ``analyze`` write inside a run folder: --overwrite deletes nothing else.
RUN_ENTRIES = ("run_config.json", "labels.json", "metrics.json", "identity.json", ".incomplete", "best",
               "best.tmp", "checkpoint", "checkpoint.tmp", "checkpoint.old", "analysis")
RUN_ENTRY_PREFIXES = ("seed-", "lr-", "eval_")


def check_replaceable(out: Path) -> None:
    """``--overwrite`` only ever replaces a mept run: refuse a link, or a folder with files mept did not write.

    A mept run holds ``run_config.json``; every other entry must be one of :data:`RUN_ENTRIES`
    (or ``seed-N``, ``lr-X``, ``eval_*.json``, a hidden temp file of ours). Anything else is named,
    so the user moves it out or picks another ``--output``: a notes file or the training CSV in
    the folder is never deleted.
    """
    out = Path(out)
    if out.is_symlink():
        raise MeptError(f"--output {out} is a symbolic link (to {os.readlink(out)}); --overwrite does not replace "
                        f"a link: pass the folder it points to, or another --output")
    if not out.is_dir() or not any(out.iterdir()):
        return
    names = sorted(p.name for p in out.iterdir())
    if "run_config.json" not in names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise MeptError(f"--overwrite replaces only a mept run, but {out} is not one (no run_config.json; it holds "
                        f"{shown}); pick another --output or move those files out")
    foreign = [n for n in names if n not in RUN_ENTRIES and not n.startswith(RUN_ENTRY_PREFIXES)
               and not (n.startswith(".") and n.endswith(".tmp"))]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise MeptError(f"--overwrite would delete the run in {out}, but it also holds files mept did not write "
                        f"({shown}); move them out first, or pick another --output")


def move_aside(out: Path) -> None:
    """``--overwrite``: move the old run to ``.NAME.replaced`` (kept until :func:`settle`)."""
    out = Path(out)
    check_replaceable(out)
    backup = sibling(out, REPLACED_SUFFIX)
    if backup.exists():
        if has_progress(out):  # the folder is newer and real: the older backup goes
            shutil.rmtree(backup)
        else:  # the folder is the empty shell of a run that never got going: keep the backup
            shutil.rmtree(out)
            return
    out.rename(backup)


def settle(out: Path, succeeded: bool) -> None:
    """After a run into ``out``: drop the moved-aside old run if the new one left something, else restore it."""
    out = Path(out)
    backup = sibling(out, REPLACED_SUFFIX)
    if not backup.exists():
        return
    if succeeded or has_progress(out):
        shutil.rmtree(backup)
        return
    _restore(out, backup, f"the new run stopped before writing anything resumable; the previous run in {out} was kept")


def recover(out: Path) -> None:
    """Put back a run that an ``--overwrite`` killed before its first checkpoint had moved aside."""
    backup = sibling(Path(out), REPLACED_SUFFIX)
    if backup.exists() and not has_progress(out):
        _restore(out, backup, f"restored the run in {out} that an interrupted --overwrite had moved aside")


def settings_source(out: Path) -> Path:
    """The folder whose ``run_config.json`` a ``--resume`` into ``out`` continues.

    When an interrupted ``--overwrite`` left the old run in ``.NAME.replaced`` and ``out`` holds
    only the new run's shell, taking the lock will put the old run back (:func:`recover`); its
    settings, not the shell's, are the ones to compare flags with.
    """
    backup = sibling(Path(out), REPLACED_SUFFIX)
    return backup if backup.is_dir() and not has_progress(out) else Path(out)


def hidden_run_hint(run: Path) -> str:
    """A sentence naming ``.NAME.replaced`` beside ``run`` if one is there, else ``""``.

    Readers (``eval``, ``predict``, ``analyze``) do not move folders; they say where the run is.
    """
    backup = sibling(Path(run), REPLACED_SUFFIX)
    if not backup.exists():
        return ""
    return (f"; an interrupted `mept train --overwrite` left the previous run in {backup}: the next "
            f"`mept train` into {run} puts it back, or move it back yourself")


def _restore(out: Path, backup: Path, message: str) -> None:
    """The moved-aside run takes the folder back from the new run's unfinished shell."""
    shutil.rmtree(out, ignore_errors=True)
    backup.rename(out)
    warn(message)


def read_json_object(path: Path) -> dict[str, Any]:
    """A run folder's JSON file (``run_config.json``, ``labels.json``, ``metrics.json``) as a dict,
    or a one-line error naming the file (checked for size first: these files are kilobytes when sound)."""
    check_file_size(path, MAX_RUN_JSON_BYTES, "a run folder's settings file", "the run folder is damaged or edited")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MeptError(f"{path} is not readable JSON ({str(exc).splitlines()[0]}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise MeptError(f"{path} must hold a JSON object; the run folder is damaged")
    return data
