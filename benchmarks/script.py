"""How every benchmark script ends: ``if __name__ == "__main__": run(main)``.

The scripts are run by users re-making a table, so they refuse bad input the way ``mept`` does (one
``error:`` line, exit status 2) and never show a traceback: a mistyped BIG-bench task raises ``MeptError``
deep inside ``mept.data``, a missing folder raises ``OSError``, and both used to reach the user as a stack
trace with exit status 1. One function for all of them, so that a new script gets the rule by its last line
(``tests/test_benchmark_tables.py`` checks that each script ends that way).

Light on purpose: importing this module imports neither torch nor mept, so a script may still set
environment variables before torch loads (``common.py``). The CLI's error wording (``mept.errors``) is
imported only when an error arrives.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import Callable, NoReturn


def fail(message: str) -> NoReturn:
    """Refuse a bad input the project's way: one ``error:`` line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_command(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command a script drives (a ``mept train`` run, a timer around one); if it fails, end the script.

    The child has already said what went wrong (its own ``error:`` line, on the terminal unless the caller
    captures stderr, in which case that line is quoted here), so the script adds one line naming the command
    and its exit status, and exits with that status: a driven run that failed is never a traceback
    (``check=True`` raised ``CalledProcessError`` into :func:`run`, which has no better words for it).
    """
    done = subprocess.run(command, **kwargs)
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace") if isinstance(done.stderr, bytes) else done.stderr or ""
        said = [line for line in stderr.splitlines() if line.startswith("error:")]
        quoted = f" ({said[-1]})" if said else ""
        print(f"error: `{shlex.join(command)}` failed with exit status {done.returncode}{quoted}", file=sys.stderr)
        raise SystemExit(done.returncode if 0 < done.returncode < 128 else 1)
    return done


def csv_flags(description: str, examples: int, max_length: int) -> argparse.ArgumentParser:
    """The flags of the scripts that read the first rows of a CSV: ``--model``, ``--data``, ``--examples``,
    ``--max-length`` (a script adds its own to the parser it gets back)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a CSV (or TSV, JSON lines) with a text column")
    ap.add_argument("--examples", type=int, default=examples)
    ap.add_argument("--max-length", type=int, default=max_length)
    return ap


def csv_rows(path: str | os.PathLike, columns: tuple[str, ...] = ("text",)) -> list[dict[str, str]]:
    """A data file's rows, read by the library's reader (``mept.data.jsonl.read_table``: CSV, TSV or JSON lines).

    ``Row.get`` checks every row up front, so a missing column is mept's one-line ``MeptError`` naming the
    field, the file, the line and the fields found (``run`` prints it), never a ``KeyError`` traceback. mept is
    imported only here: the scripts that read rows load it anyway.
    """
    from pathlib import Path

    from mept.data.jsonl import read_table

    path = Path(path).expanduser()
    rows = read_table(path)
    if not rows:
        fail(f"{path}: no rows; give a file with a header line and at least one row")
    return [{c: row.get(c) for c in columns} for row in rows]


def run(main: Callable[[], object]) -> NoReturn:
    """Run a script's ``main`` and exit with its status (an int it returns, else 0), errors as one line."""
    try:
        status = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        # the CLI's wording (mept.errors), imported only now: at start-up this module loads neither mept nor torch
        from mept.errors import MeptError, internal_error_line, os_error_line

        if isinstance(exc, MeptError):
            fail(str(exc))
        if isinstance(exc, OSError):  # a missing or read-only path, a full disk: name it
            fail(os_error_line(exc))
        if os.environ.get("MEPT_DEBUG"):
            raise
        print(f"error: {internal_error_line(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(status if isinstance(status, int) else 0)
