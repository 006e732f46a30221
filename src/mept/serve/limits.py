"""What one ``mept serve`` accepts: batch size and wait, queue, request size and time (each a flag)."""

from __future__ import annotations

from dataclasses import dataclass

from mept.errors import MeptError


@dataclass
class Limits:
    """What one server accepts (ours; each a ``mept serve`` flag)."""

    max_batch_size: int = 32  # rows per forward
    max_wait_ms: float = 5.0  # how long the oldest queued request waits for others to join its batch
    max_queue: int = 256  # rows waiting for the model; more is refused with 503 at once
    max_inputs: int = 64  # rows per request
    max_request_bytes: int = 1 << 20  # body size
    request_timeout: float = 60.0  # seconds a request may wait for its answer
    mix_adapters: bool = True  # False: one adapter per forward (for comparison, benchmarks/serve.py)

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_inputs", "max_request_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise MeptError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {getattr(self, name)!r}")
        for name in ("max_wait_ms", "request_timeout"):
            value = getattr(self, name)
            if not (value >= 0 if name == "max_wait_ms" else value > 0) or value != value or value == float("inf"):
                raise MeptError(f"--{name.replace('_', '-')} must be a finite number "
                                f"{'>= 0' if name == 'max_wait_ms' else '> 0'}, got {value!r}")
        if self.max_inputs > self.max_queue:
            raise MeptError(f"--max-inputs {self.max_inputs} exceeds --max-queue {self.max_queue}: such a request "
                            f"could never be queued")
