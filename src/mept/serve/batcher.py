"""Dynamic batching: requests that arrive together share one forward, whatever adapters they name.

One worker thread owns the model. A request's rows join a bounded queue (:meth:`Batcher.submit`
refuses at once, :class:`Overloaded`, when the queue would hold more than ``max_queue`` rows);
the worker takes the oldest request, waits at most ``max_wait`` for more to arrive, and runs
the requests it has in arrival order, up to ``max_batch_size`` rows (a larger request runs alone,
in chunks of ``max_batch_size``), as one mixed batch. :meth:`Batcher.close` lets the worker finish every
queued request before it stops: nothing accepted is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The queue is full: the request is refused now rather than left waiting."""


class Closed(Exception):
    """The server is shutting down and takes no new requests."""


@dataclass
class Job:
    items: list[Any]
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """What the worker has run: forwards, rows, and batches that mixed several adapters."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    mixed_batches: int = 0  # batches whose rows named more than one adapter
    largest_batch: int = 0


class Batcher:
    def __init__(self, run: Callable[[list[Any]], list[Any]], *, max_batch_size: int, max_wait: float, max_queue: int,
                 key: Callable[[Any], Any] = lambda item: None, mix: bool = True) -> None:
        """``run(items) -> results`` (one per item, in order) is called on the worker thread only.

        ``key(item)`` names an item's adapter, for :class:`BatchStats`'s count of mixed batches;
        ``mix=False`` batches only requests of the oldest request's adapter together (one adapter
        per forward, what a server that cannot mix adapters does: ``benchmarks/serve.py`` compares).
        """
        self.run = run
        self.mix = mix
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.key = key
        self.stats = BatchStats()
        self._jobs: deque[Job] = deque()
        self._queued_rows = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="mept-batcher", daemon=True)
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def submit(self, items: list[Any]) -> Future:
        """Queue one request's items; its future gets their results (or the exception that stopped them)."""
        with self._cond:
            if self._closed:
                raise Closed()
            if self._queued_rows + len(items) > self.max_queue:
                raise Overloaded(f"{self._queued_rows} rows are queued; this request's {len(items)} would pass the "
                                 f"limit of {self.max_queue} (--max-queue)")
            job = Job(list(items))
            self._jobs.append(job)
            self._queued_rows += len(items)
            self._cond.notify()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Take no new requests; return once every queued one is answered (or ``timeout`` passed)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[Job] | None:
        """The next batch of jobs, after waiting for the first and then at most ``max_wait`` for more."""
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if not self._jobs:
                return None  # closed and drained
            deadline = self._jobs[0].arrived + self.max_wait
            while self._queued_rows < self.max_batch_size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            jobs = [self._jobs.popleft()]
            rows = len(jobs[0].items)
            kind = self.key(jobs[0].items[0])
            kept: deque[Job] = deque()
            while self._jobs:
                job = self._jobs.popleft()
                fits = rows + len(job.items) <= self.max_batch_size
                if fits and (self.mix or self.key(job.items[0]) == kind):
                    rows += len(job.items)
                    jobs.append(job)
                else:
                    kept.append(job)
                    if not fits and self.mix:
                        break
            kept.extend(self._jobs)
            self._jobs = kept
            self._queued_rows -= rows
            return jobs

    def _work(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            items = [item for job in jobs for item in job.items]
            try:
                results = self.run(items)
            except Exception as exc:  # every waiting request learns why; none hangs
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            self._count(jobs, items)
            start = 0
            for job in jobs:
                job.future.set_result(results[start : start + len(job.items)])
                start += len(job.items)

    def _count(self, jobs: list[Job], items: list[Any]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.rows += len(items)
        stats.requests += len(jobs)
        stats.largest_batch = max(stats.largest_batch, len(items))
        if len({self.key(item) for item in items}) > 1:
            stats.mixed_batches += 1
