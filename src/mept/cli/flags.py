"""A list flag given twice keeps both lists: ``--set a=1 --set b=2`` means ``--set a=1 b=2``.

argparse's ``nargs="+"`` stores each occurrence over the last, so the first ``--set`` of two was silently
dropped (a run trained without a setting its command line names); its ``action="extend"`` appends to the
default instead (``--seeds 4`` on a default of 1 2 3 would run 1 2 3 4). :class:`ListFlag` does neither:
the first occurrence replaces the default, each later one extends it. Every optional list flag of ``mept``
and of the benchmark scripts takes it (``tests/test_cli_flags.py`` walks the parsers and the scripts).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence


class ListFlag(argparse.Action):
    """``nargs="+"`` whose repeats accumulate; a default is replaced by the first occurrence, never extended."""

    def __init__(self, option_strings: Sequence[str], dest: str, nargs: Any = "+", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        # argparse sets the default object itself on the namespace: while it is still there, this is the first
        if current is None or current is self.default:
            setattr(namespace, self.dest, list(values))
        else:
            setattr(namespace, self.dest, [*current, *values])
