"""The ``LABEL=GLOB`` arguments every run table takes (``runs_table.py``, ``learning_curves.py``, ``train_loss.py``).

One parser for all of them, so that each refuses the same bad inputs the same way, with one ``error:`` line
and before it writes anything: a spec without ``LABEL=``, or a label whose globs match nothing the script can
read. A table with an empty row would otherwise look like a result (a variant with no runs printed as blank
cells and ``nan`` seconds), and a pooled comparison silently loses a task.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Callable

from script import fail  # benchmarks/script.py: the one refusal of every benchmark script


def labelled_paths(specs: list[str], flag: str, what: str,
                   keep: Callable[[Path], bool] = lambda path: True) -> dict[str, list[Path]]:
    """Each label's matching paths, in order (a label given again adds its glob's; a path is listed once).

    ``keep`` drops what the script cannot read (an unfinished run folder); ``what`` names what it reads, for
    the error line.
    """
    found: dict[str, list[Path]] = {}
    patterns: dict[str, list[str]] = {}
    for spec in specs:
        label, pattern, matched = split_spec(spec, keep)
        if not label or not pattern:
            fail(f"{flag} {spec!r}: write LABEL=GLOB (e.g. {flag} mept='runs/winowhy-mept-s*')")
        paths = found.setdefault(label, [])
        patterns.setdefault(label, []).append(pattern)
        paths.extend(p for p in matched if p not in paths)
    for label, paths in found.items():
        if not paths:
            fail(f"{flag} {label}: no {what} matches {' or '.join(patterns[label])}")
    return found


def split_spec(spec: str, keep: Callable[[Path], bool]) -> tuple[str, str, list[Path]]:
    """``LABEL=GLOB`` split where the glob matches: a label may hold ``=`` itself (``N_r=1=runs/x-s*``).

    The first ``=`` whose remainder matches a readable path ends the label; when none does, the first ``=`` (so
    the error names the label as typed up to it). Empty parts come back empty, for the caller's refusal.
    """
    cuts = [i for i, ch in enumerate(spec) if ch == "="]
    for i in cuts:
        matched = [p for p in map(Path, sorted(glob.glob(spec[i + 1:]))) if keep(p)]
        if matched and i > 0:
            return spec[:i], spec[i + 1:], matched
    if not cuts:
        return "", "", []
    return spec[:cuts[0]], spec[cuts[0] + 1:], []
