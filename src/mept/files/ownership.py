"""Who may write where: an output is replaced only if mept wrote it, and only when the user asks.

Every command that writes where the user pointed it calls :func:`claim_output` before it opens
anything for writing (and, for a model, before the model loads):

- ``mept train --output`` (a run folder, :data:`mept.harness.run_folder.RUN`),
- ``mept compare --output`` (a comparison, :data:`mept.harness.compare.COMPARISON`),
- ``mept analyze --out`` (an analysis, :data:`mept.analysis.report.ANALYSIS`),
- ``mept predict --output`` (a predictions file, :data:`mept.harness.predictions.PREDICTIONS`),
- ``mept eval`` (its ``eval_*.json`` inside the run, :data:`mept.harness.eval_run.EVAL_RESULT`).

What each writes is an :class:`OutputKind`, declared beside the code that writes it: a folder kind
names the marker file mept writes there first and every entry it may hold; a file kind says how a
file of ours looks. The rule is the same for all: a missing or empty output is taken; an existing
one that mept wrote is replaced only with ``--overwrite``; anything else (your data, your notes, a
folder with one file of yours in it, a symbolic link) is refused, naming what is there, and the
error never suggests a flag that would then be refused too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mept.errors import MeptError

SHOWN = 5  # names listed in an error before "and N more"


@dataclass(frozen=True)
class OutputKind:
    """What one mept command writes, so that it can tell its own output from anything else.

    ``what``: the output in words ("a mept run"). A folder kind gives ``marker`` (written first, so
    even an interrupted output is known as ours), ``entries`` (names it may hold) and ``prefixes``
    (``seed-``...); ``legacy`` says whether a folder without the marker, from a mept that wrote
    none, is still ours. A file kind gives ``owns_file``, which reads the file's start.
    """

    what: str
    marker: str | None = None
    entries: Callable[[], frozenset[str]] = field(default=lambda: frozenset())
    prefixes: tuple[str, ...] = ()
    legacy: Callable[[Path, list[str]], bool] | None = None
    owns_file: Callable[[Path], bool] | None = None

    def foreign(self, names: list[str]) -> list[str]:
        """The entries of a folder of this kind that mept did not write."""
        ours = self.entries() | ({self.marker} if self.marker else set())
        return [n for n in names if not _ours(n, ours, self.prefixes)]


def _ours(name: str, entries: frozenset[str] | set[str], prefixes: tuple[str, ...]) -> bool:
    if name in entries or name.startswith(prefixes):
        return True
    if name.startswith(".") and name.endswith(".tmp"):  # a temp file of atomic_write or a checkpoint swap
        return True
    for suffix in (".lock", ".replaced"):  # the bookkeeping beside one of our entries (run_folder.sibling)
        if name.startswith(".") and name.endswith(suffix):
            inner = name[1:-len(suffix)]
            return inner in entries or inner.startswith(prefixes)
    return False


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


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def claim_output(out: Path, kind: OutputKind, *, overwrite: bool, flag: str = "--output",
                 hint: str = "") -> bool:
    """Check that ``out`` may be written as ``kind``; True if it holds an earlier output to replace.

    Nothing is written here. ``hint`` is added to the refusal of an earlier output of ours
    (``mept train``: "or --resume to continue it").
    """
    out = Path(out)
    if kind.owns_file is not None:
        return _claim_file(out, kind, overwrite, flag)
    check_writable(out, flag)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False  # nothing to replace (an empty folder behind a link too: the output may live on another disk)
    if out.is_symlink():
        raise MeptError(f"{flag} {out} is a symbolic link (to {os.readlink(out)}); mept does not replace what a "
                        f"link points to: pass the folder it points to, or another {flag}")
    names = sorted(p.name for p in out.iterdir())
    foreign = kind.foreign(names)
    if not (kind.marker in names or (kind.legacy is not None and kind.legacy(out, names))):
        verb = "--overwrite replaces only" if overwrite else f"{flag} must be a new or empty folder, or"
        raise MeptError(f"{verb} {kind.what}, but {out} is not one (it holds {_listed(foreign or names)}); pick "
                        f"another {flag} or move those files out")
    if foreign:
        raise MeptError(f"{flag} {out} holds {kind.what} but also files mept did not write ({_listed(foreign)}); "
                        f"{'--overwrite would delete them: ' if overwrite else ''}move them out first, or pick "
                        f"another {flag}")
    if not overwrite:
        raise MeptError(f"{flag} {out} already holds {kind.what}; pass --overwrite to replace it{hint}, "
                        f"or pick another {flag}")
    return True


def _claim_file(out: Path, kind: OutputKind, overwrite: bool, flag: str) -> bool:
    if out.is_symlink():
        raise MeptError(f"{flag} {out} is a symbolic link (to {os.readlink(out)}); mept does not write through or "
                        f"replace a link: name another file")
    if out.is_dir():
        raise MeptError(f"{flag} {out} is a folder; name a file")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise MeptError(f"{flag} {out} lies under {folder}, which is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MeptError(f"{flag} {out}: no permission to write in {folder}")
    if not out.exists():
        return False
    if not kind.owns_file(out):
        raise MeptError(f"{flag} {out} already exists and is not {kind.what} (mept replaces only what it wrote); "
                        f"name another file")
    if not overwrite:
        raise MeptError(f"{flag} {out} already holds {kind.what}; pass --overwrite to replace it, or name another file")
    if not os.access(out, os.W_OK):
        raise MeptError(f"{flag} {out} is read-only; pick another file")
    return True
