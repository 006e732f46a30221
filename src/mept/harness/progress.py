"""Progress for logs: a plain line at a fixed interval when stderr is not a terminal.

A progress bar in a log file is noise, and without one a redirected run used to stay silent until
its first evaluation (minutes on a long CSV). So when stderr is a file or pipe, a background thread
writes one line every ``MEPT_PROGRESS_SECONDS`` seconds (default 30) -- also while the main thread
is inside a long evaluation or checkpoint save, which a check in the training loop would miss:

    progress 1m30s: step 120/834  loss 0.5213  72.4 ex/s  ETA 9m52s

The ETA counts wall time per step of this session, so evaluation and saving are included.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from mept.errors import MeptError

INTERVAL_ENV = "MEPT_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def interval_seconds() -> float:
    """The interval from ``$MEPT_PROGRESS_SECONDS`` (a positive number), else 30 s."""
    raw = os.environ.get(INTERVAL_ENV)
    if raw is None or raw == "":
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise MeptError(f"{INTERVAL_ENV} must be a number of seconds > 0, got {raw!r}")
    return value


def duration(seconds: float) -> str:
    """``95`` -> ``1m35s``, ``3725`` -> ``1h02m05s``: short enough for a log line."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclass
class Progress:
    """What the loop last reported; the writer thread reads it (plain attribute reads, no lock needed)."""

    total: int = 0  # 0 until the loop knows its step count (:meth:`begin`)
    start_step: int = 0  # a resumed run starts later: its ETA counts this session's steps only
    started: float = field(default_factory=time.monotonic)
    begun: float = 0.0
    step: int = 0
    loss: float | None = None
    examples_per_second: float = 0.0
    phase: str = ""  # "evaluating", "saving": where a long pause comes from

    def begin(self, total: int, step: int) -> None:
        self.total, self.start_step, self.step, self.begun = total, step, step, time.monotonic()

    def update(self, step: int, loss: float, examples_per_second: float) -> None:
        self.step, self.loss, self.examples_per_second = step, loss, examples_per_second

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if not self.total:
            return f"progress {duration(now - self.started)}: preparing"
        done = self.step - self.start_step
        eta = duration((now - self.begun) / done * (self.total - self.step)) if done else "unknown"
        loss = f"  loss {self.loss:.4f}" if self.loss is not None else ""
        phase = f"  ({self.phase})" if self.phase else ""
        return (f"progress {duration(now - self.started)}: step {self.step}/{self.total}{loss}  "
                f"{self.examples_per_second:.1f} ex/s  ETA {eta}{phase}")


@contextmanager
def progress_lines(enabled: bool, stream: TextIO | None = None, interval: float | None = None) -> Iterator[Progress]:
    """Yield a :class:`Progress` for the loop to update; while enabled, a thread writes its line every interval."""
    progress = Progress()
    if not enabled:
        yield progress
        return
    every = interval_seconds() if interval is None else interval
    out = stream or sys.stderr
    stop = threading.Event()

    def write() -> None:
        while not stop.wait(every):
            print(progress.line(), file=out, flush=True)

    thread = threading.Thread(target=write, name="mept-progress", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
