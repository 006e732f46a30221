"""Where a training run is: step, best checkpoint, history, time spent -- one record with its JSON form.

The loop (:mod:`mept.harness.train`) updates it, every checkpoint saves it in
``trainer_state.json`` (:mod:`mept.harness.checkpoint`, beside the optimizer, scheduler and RNG
entries), :mod:`mept.harness.resume_state` checks it before a resume uses it, and
:mod:`mept.harness.run_report` turns it into ``metrics.json``. The JSON keys are those checkpoints
have held since 251c45a, so older run folders resume as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """The loop's progress; ``best_result`` is the best evaluation's whole result (validation scores)."""

    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    best_result: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # per evaluation: step, loss, validation (+ routing)
    train_seconds: float = 0.0  # forward, backward and update only
    wall_seconds: float = 0.0  # everything, up to the last checkpoint
    eval_seconds: float | None = None  # the last pass over validation; None before the first
    examples_seen: int = 0
    eval_train_seconds: list[list[float]] = field(default_factory=list)  # [step, train seconds] per evaluation

    @property
    def examples_per_second(self) -> float:
        """Training throughput over train-only time (evaluation and checkpoint I/O excluded)."""
        return self.examples_seen / max(self.train_seconds, 1e-9)

    def record_step(self, start: float, end: float, examples: int) -> None:
        """A step done: it took ``end - start`` seconds (``time.perf_counter()``) and read ``examples``."""
        self.step += 1
        self.train_seconds = self.train_seconds + end - start
        self.examples_seen += examples

    def record_evaluation(self, loss: float, result: dict[str, Any], seconds: float) -> bool:
        """Add this step's evaluation to the history; True when it is the best so far (its adapter is then saved)."""
        self.eval_seconds = seconds
        entry = {"step": self.step, "loss": round(loss, 6), "validation": result["average"]}
        # measured, so kept apart from the history (which identical runs reproduce exactly)
        self.eval_train_seconds.append([self.step, round(self.train_seconds, 3)])
        if result.get("routing"):
            entry["routing_entropy"] = result["routing"]["mean_entropy"]
            entry["collapsed_layers"] = len(result["routing"]["collapsed_layers"])
        self.history.append(entry)
        if self.best_score is None or result["average"] > self.best_score:
            self.best_score, self.best_step, self.best_result = result["average"], self.step, result
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        """The ``trainer_state.json`` entries (an unset ``best_result`` or ``eval_seconds`` is left out, as before)."""
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if not (k in ("best_result", "eval_seconds") and v is None)}

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> "TrainState":
        """A state read back (checked first by :func:`mept.harness.resume_state.read_resume_state`); an entry an
        older checkpoint lacks takes its default, one this code does not know is ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})
