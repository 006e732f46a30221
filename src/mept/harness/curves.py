"""Learning curves of trained runs: validation per evaluation, against optimizer steps and train seconds.

A table at one budget cannot tell a method that lost from one that had not finished: prompt methods learn
slower per step than LoRA or full fine-tuning (issue 29). Every run already records its evaluations
(``metrics.json`` ``history``) and the train-only seconds at each (``timing.train_seconds_at_eval``:
forward, backward and update; evaluation excluded); this module turns a method's seeds into one curve, reads
it at equal steps, at an equal train-time budget and at its best point, and draws curves side by side.
``mept compare`` writes them (``curves.png``, ``compare.json``); ``benchmarks/learning_curves.py`` reads run
folders with it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

Point = tuple[int, float | None, float]  # (step, train seconds at that evaluation or None, validation score)


def seed_points(metrics: dict[str, Any]) -> list[Point]:
    """One run's curve from its ``metrics.json`` (a run from before the seconds were recorded: None seconds)."""
    seconds = {int(step): t for step, t in (metrics.get("timing") or {}).get("train_seconds_at_eval", [])}
    return [(h["step"], seconds.get(h["step"]), h["validation"]) for h in metrics.get("history", [])]


def method_curve(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A method's curve over its seeds (seed -> ``metrics.json``): per step evaluated by every seed, the mean and
    std of validation and the mean train seconds; each seed's points; the best step of the mean, and whether it
    is the last evaluation (``still_rising``: the run ended before the curve turned, so a longer budget may help)."""
    per_seed = {seed: seed_points(m) for seed, m in runs.items()}
    shared = sorted(set.intersection(*({p[0] for p in points} for points in per_seed.values()))) if per_seed else []
    rows = []
    for step in shared:
        at = [next(p for p in points if p[0] == step) for points in per_seed.values()]
        values = [p[2] for p in at]
        seconds = [p[1] for p in at if p[1] is not None]
        rows.append({"step": step, "validation_mean": statistics.fmean(values),
                     "validation_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "train_seconds_mean": statistics.fmean(seconds) if len(seconds) == len(at) else None})
    best = max(rows, key=lambda r: r["validation_mean"]) if rows else None
    return {"points": rows, "per_seed": {str(s): [list(p) for p in pts] for s, pts in per_seed.items()},
            "best_step": best["step"] if best else None,
            "best_validation_mean": best["validation_mean"] if best else None,
            "still_rising": bool(rows) and len(rows) > 1 and best is rows[-1]}


def validation_within(points: list[Point], budget: float) -> float | None:
    """The validation of the last evaluation done within ``budget`` train seconds (None: none was)."""
    done = [p for p in points if p[1] is not None and p[1] <= budget]
    return done[-1][2] if done else None


def at_budget(curve: dict[str, Any], budget: float) -> list[float] | None:
    """Each seed's validation at ``budget`` train seconds, or None when a seed had not evaluated by then."""
    values = [validation_within([tuple(p) for p in pts], budget) for pts in curve["per_seed"].values()]
    return None if not values or any(v is None for v in values) else values


def curve_summary(curves: dict[str, dict[str, Any]]) -> str:
    """One line per method: where its mean validation peaked and whether it was still rising at the end."""
    lines = []
    for label, curve in curves.items():
        points = curve["points"]
        if len(points) < 2:
            continue
        turn = ("still rising at the last evaluation: a longer run may score higher" if curve["still_rising"]
                else "then flat or falling")
        lines.append(f"{label}: best mean validation {curve['best_validation_mean']:.2f} at step {curve['best_step']} "
                     f"of {points[-1]['step']} ({len(points)} evaluations; {turn})")
    return "\n".join(lines)


def plot_curves(curves: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Validation against steps (left) and train seconds (right): the mean over seeds bold, each seed faint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, (label, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        for points in curve["per_seed"].values():
            for x, ax in ((0, axes[0]), (1, axes[1])):
                kept = [p for p in points if p[x] is not None]
                ax.plot([p[x] for p in kept], [p[2] for p in kept], color=color, alpha=0.25, lw=0.8)
        rows = curve["points"]
        axes[0].plot([r["step"] for r in rows], [r["validation_mean"] for r in rows], color=color, lw=2, marker="o",
                     ms=3, label=label)
        timed = [r for r in rows if r["train_seconds_mean"] is not None]
        axes[1].plot([r["train_seconds_mean"] for r in timed], [r["validation_mean"] for r in timed], color=color,
                     lw=2, marker="o", ms=3, label=label)
    axes[0].set_xlabel("optimizer steps")
    axes[1].set_xlabel("train seconds (evaluation excluded)")
    axes[0].set_ylabel("validation score (mean over seeds; seeds faint)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
