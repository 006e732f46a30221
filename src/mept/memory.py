"""Give freed memory back to the operating system between the phases of a run.

Tokenising a long-text CSV and scoring validation batches allocate many short-lived objects
and tensors; once freed, glibc keeps most of those pages in the process's heap, so the resident
set stays high and the training steps that follow add their activations on top of it. Collecting
cycles and calling ``malloc_trim(0)`` after each phase returns the free pages, so peak memory is
the largest phase rather than the phases stacked (benchmarks/README.md, Memory). Numbers do not
change: nothing live is touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc, where it is the allocator (Linux); None elsewhere (macOS, Windows, musl without malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_memory() -> None:
    """Free unreachable objects, then hand the heap's free pages back to the OS (a no-op without glibc)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
