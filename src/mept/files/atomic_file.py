"""Write a file through a temp file and a rename: a crash never leaves half a file.

Two things a plain ``mkstemp`` + ``os.replace`` gets wrong, and this module gets right:

- **Mode.** ``mkstemp`` creates files ``0600``; after the rename a user's shared predictions or a
  replaced file would silently lose its permissions. A replaced file keeps its mode; a new file
  gets what ``open()`` would give it (``0666`` less the umask).
- **A full disk** raised by a library as its own exception (safetensors' ``SafetensorError``)
  becomes an ``OSError`` naming the destination, which the CLI prints as one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def naming_full_disk(dest: str | os.PathLike) -> Iterator[None]:
    """Turn a library's own "No space left on device" error into an ``OSError`` naming ``dest``."""
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, OSError) and "No space left on device" in str(exc):
            raise OSError(errno.ENOSPC, "No space left on device", str(dest)) from None
        raise


def atomic_write(dest: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``dest``, then rename it over ``dest``."""
    dest = Path(dest)
    try:
        mode = stat.S_IMODE(dest.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with naming_full_disk(dest):
            write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
