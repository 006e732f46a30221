"""SIGTERM handled like Ctrl-C: the process unwinds, so locks are released and an old run is put back.

A service manager, ``timeout`` or ``kill`` sends SIGTERM; Python's default is to die on the spot,
skipping every ``finally`` (the lock beside the run folder stays, and an ``--overwrite`` that had
moved the old run aside leaves it hidden in ``.NAME.replaced``). Here SIGTERM raises
:class:`Terminated`, a ``KeyboardInterrupt``, where the process is.

One catch: a signal handler runs wherever the interpreter is, and when that is a finaliser
(``__del__``, a weakref callback) Python swallows the exception and prints "Exception ignored".
:func:`sys.unraisablehook` sees that happen, so the signal is delivered again a moment later
(SIGALRM, 10 ms), outside the finaliser.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

RETRY_SECONDS = 0.01


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds like Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_hook = sys.unraisablehook

    def swallowed(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, Terminated):
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)  # again, once out of the finaliser
            return
        previous_hook(unraisable)

    before = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGALRM)}
    sys.unraisablehook = swallowed
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.unraisablehook = previous_hook
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
