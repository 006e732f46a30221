"""Learning curves from `mept train` run folders: validation per evaluation against steps and train seconds.

Issue 29 asks of every method whether it lost or had not finished: a 2-epoch table cannot tell. Each
``--method LABEL=GLOB`` names one method's run folders (one per seed, trained with ``--eval-every`` so that
the history has points); a label given again adds a glob. Per method the script reports

- **at equal steps**: mean validation ± std over seeds at every step all methods evaluated;
- **at equal train time**: at each budget (the fastest method's whole run, and fractions of it), the
  validation of each seed's last evaluation done within that many train seconds (forward, backward,
  update; evaluation excluded: ``metrics.json`` ``timing.train_seconds_at_eval``);
- **at its best point**: the step of the best mean validation, whether that is the last evaluation
  (then the curve had not plateaued), the test score at each seed's chosen checkpoint, and a paired test
  of that test score against the first method;

and draws both curves (mean over seeds, each seed faint) into one PNG.

    python benchmarks/learning_curves.py --method mept='runs/lc/winowhy-mept-s*' \\
        --method lora='runs/lc/winowhy-lora-s*' --png benchmarks/results/curves/winowhy.png
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
from pathlib import Path
from typing import Any

from common import mean_std  # benchmarks/common.py

from mept.harness.stats import paired_test

BUDGET_FRACTIONS = (0.25, 0.5, 1.0)


def curve(folder: Path) -> dict[str, Any] | None:
    """One run's curve: seed, [(step, train seconds, validation)], test at the chosen checkpoint."""
    path = folder / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    seconds = dict((int(s), t) for s, t in (metrics.get("timing") or {}).get("train_seconds_at_eval", []))
    points = [(h["step"], seconds.get(h["step"]), h["validation"]) for h in metrics.get("history", [])]
    return {"run": folder.name, "seed": metrics["seed"], "points": points,
            "test": (metrics.get("test") or {}).get("average"), "best_step": metrics.get("best_step")}


def gather(specs: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    methods: dict[str, dict[int, dict[str, Any]]] = {}
    for spec in specs:
        label, _, pattern = spec.partition("=")
        runs = methods.setdefault(label, {})
        for found in sorted(glob.glob(pattern)):
            run = curve(Path(found))
            if run is None:
                continue
            if run["seed"] in runs:  # two folders of one seed: the glob caught another method's runs
                raise SystemExit(f"error: --method {label} matches two runs of seed {run['seed']} "
                                 f"({runs[run['seed']]['run']}, {run['run']}); narrow its glob")
            runs[run["seed"]] = run
        if not runs:
            raise SystemExit(f"error: --method {label}: no finished run folder (metrics.json) matches {pattern}")
    return methods


def at_steps(methods: dict[str, dict[int, dict[str, Any]]]) -> str:
    shared = set.intersection(*({p[0] for r in runs.values() for p in r["points"]} for runs in methods.values()))
    lines = ["| step | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for step in sorted(shared):
        cells = []
        for runs in methods.values():
            values = [p[2] for r in runs.values() for p in r["points"] if p[0] == step]
            cells.append(mean_std(values))
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def within(run: dict[str, Any], budget: float) -> float | None:
    """The validation of the last evaluation done within ``budget`` train seconds (None: none was)."""
    done = [p for p in run["points"] if p[1] is not None and p[1] <= budget]
    return done[-1][2] if done else None


def at_time(methods: dict[str, dict[int, dict[str, Any]]]) -> str:
    totals = {label: statistics.fmean(r["points"][-1][1] for r in runs.values()) for label, runs in methods.items()}
    fastest = min(totals.values())
    budgets = [fastest * f for f in BUDGET_FRACTIONS]
    lines = ["| train seconds | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for budget in budgets:
        cells = []
        for runs in methods.values():
            values = [within(r, budget) for r in runs.values()]
            values = [v for v in values if v is not None]
            cells.append(mean_std(values) if len(values) == len(runs) else "no evaluation yet")
        lines.append(f"| {budget:.0f} | " + " | ".join(cells) + " |")
    lines.append("| whole run | " + " | ".join(f"{totals[m]:.0f} s" for m in methods) + " |")
    return "\n".join(lines)


def best(methods: dict[str, dict[int, dict[str, Any]]]) -> str:
    reference_label, reference = next(iter(methods.items()))
    lines = ["| method | seeds | best mean validation | at step | last evaluation? | test at chosen checkpoint | "
             f"test - {reference_label} (p) |", "|---|---|---:|---:|---|---:|---|"]
    for label, runs in methods.items():
        steps = sorted({p[0] for r in runs.values() for p in r["points"]})
        means = {s: statistics.fmean(p[2] for r in runs.values() for p in r["points"] if p[0] == s) for s in steps}
        top = max(steps, key=lambda s: means[s])
        seeds = sorted(runs)
        tests = [runs[s]["test"] for s in seeds if runs[s]["test"] is not None]
        shared = [s for s in seeds if s in reference and runs[s]["test"] is not None and reference[s]["test"] is not None]
        diff = "-"
        if label != reference_label and len(shared) >= 2:
            t = paired_test([runs[s]["test"] for s in shared], [reference[s]["test"] for s in shared])
            diff = f"{t['mean_diff']:+.2f} (p = {t['p_two_sided']:.3f}, n = {t['n']})"
        last = "yes: still rising" if top == steps[-1] else "no"
        lines.append(f"| {label} | {', '.join(map(str, seeds))} | {means[top]:.2f} | {top} | {last} | "
                     f"{mean_std(tests) if tests else '-'} | {diff} |")
    return "\n".join(lines)


def draw(methods: dict[str, dict[int, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, (label, runs) in enumerate(methods.items()):
        color = f"C{i}"
        for x_index, ax in ((0, axes[0]), (1, axes[1])):
            for r in runs.values():
                xs = [p[x_index] for p in r["points"] if p[x_index] is not None]
                ax.plot(xs, [p[2] for p in r["points"] if p[x_index] is not None], color=color, alpha=0.25, lw=0.8)
        steps = sorted({p[0] for r in runs.values() for p in r["points"]})
        mean_val = [statistics.fmean(p[2] for r in runs.values() for p in r["points"] if p[0] == s) for s in steps]
        mean_sec = [statistics.fmean(p[1] for r in runs.values() for p in r["points"] if p[0] == s and p[1] is not None)
                    for s in steps]
        axes[0].plot(steps, mean_val, color=color, lw=2, marker="o", ms=3, label=label)
        axes[1].plot(mean_sec, mean_val, color=color, lw=2, marker="o", ms=3, label=label)
    axes[0].set_xlabel("optimizer steps")
    axes[1].set_xlabel("train seconds (evaluation excluded)")
    axes[0].set_ylabel("validation score (mean over seeds; seeds faint)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", action="append", required=True, metavar="LABEL=GLOB",
                    help="a method's run folders (one per seed); the first is the reference; repeat a label to add a glob")
    ap.add_argument("--png", type=Path, help="write the curves here")
    ap.add_argument("--title", default="learning curves")
    args = ap.parse_args()
    methods = gather(args.method)
    print("At equal steps (validation, mean ± std over seeds):\n\n" + at_steps(methods))
    print("\nAt equal train time (each seed's last evaluation within the budget):\n\n" + at_time(methods))
    print("\nAt each method's best point:\n\n" + best(methods))
    if args.png:
        draw(methods, args.png, args.title)
        print(f"\ncurves: {args.png}")


if __name__ == "__main__":
    main()
