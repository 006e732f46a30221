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
import json
from pathlib import Path
from typing import Any

from common import mean_std, paired_text  # benchmarks/common.py
from script import fail  # benchmarks/script.py
from variant_globs import labelled_paths

from mept.harness.curves import at_budget, method_curve, plot_curves
from mept.harness.stats import paired_test

BUDGET_FRACTIONS = (0.25, 0.5, 1.0)
Runs = dict[int, dict[str, Any]]  # seed -> metrics.json


def gather(specs: list[str]) -> dict[str, Runs]:
    """Each label's runs by seed (a label given again adds its glob's folders)."""
    methods: dict[str, Runs] = {}
    folders = labelled_paths(specs, "--method", "finished run folder (metrics.json)",
                             keep=lambda path: (path / "metrics.json").exists())
    for label, paths in folders.items():
        runs = methods.setdefault(label, {})
        names: dict[int, str] = {}
        for folder in paths:
            metrics = json.loads((folder / "metrics.json").read_text())
            seed = metrics["seed"]
            if seed in runs:  # two folders of one seed: the glob caught another method's runs
                fail(f"--method {label} matches two runs of seed {seed} "
                     f"({names[seed]}, {folder.name}); narrow its glob")
            runs[seed], names[seed] = metrics, folder.name
    return methods


def at_steps(curves: dict[str, dict[str, Any]]) -> str:
    by_step = {label: {r["step"]: r for r in c["points"]} for label, c in curves.items()}
    shared = set.intersection(*(set(steps) for steps in by_step.values()))
    lines = ["| step | " + " | ".join(curves) + " |", "|---:|" + "---:|" * len(curves)]
    for step in sorted(shared):
        cells = [f"{rows[step]['validation_mean']:.2f} ± {rows[step]['validation_std']:.2f}" for rows in by_step.values()]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def at_time(curves: dict[str, dict[str, Any]]) -> str:
    totals = {label: c["points"][-1]["train_seconds_mean"] for label, c in curves.items()}
    if any(t is None for t in totals.values()):
        return "(a run without train seconds per evaluation: no equal-time table)"
    fastest = min(totals.values())
    lines = ["| train seconds | " + " | ".join(curves) + " |", "|---:|" + "---:|" * len(curves)]
    for budget in (fastest * f for f in BUDGET_FRACTIONS):
        cells = []
        for curve in curves.values():
            values = at_budget(curve, budget)
            cells.append(mean_std(values) if values else "no evaluation yet")
        lines.append(f"| {budget:,.0f} | " + " | ".join(cells) + " |")
    lines.append("| whole run | " + " | ".join(f"{totals[m]:,.0f} s" for m in curves) + " |")
    return "\n".join(lines)


def best(methods: dict[str, Runs], curves: dict[str, dict[str, Any]]) -> str:
    reference_label, reference = next(iter(methods.items()))
    lines = ["| method | seeds | best mean validation | at step | last evaluation? | test at chosen checkpoint | "
             f"test - {reference_label} (p) |", "|---|---|---:|---:|---|---:|---|"]
    for label, runs in methods.items():
        curve = curves[label]
        seeds = sorted(runs)
        test = {s: (runs[s].get("test") or {}).get("average") for s in seeds}
        shared = [s for s in seeds if s in reference and test[s] is not None
                  and (reference[s].get("test") or {}).get("average") is not None]
        diff = "-"
        if label != reference_label and len(shared) >= 2:
            t = paired_test([test[s] for s in shared], [reference[s]["test"]["average"] for s in shared])
            diff = paired_text(t)
        tests = [v for v in test.values() if v is not None]
        last = "yes: still rising" if curve["still_rising"] else "no"
        lines.append(f"| {label} | {', '.join(map(str, seeds))} | {curve['best_validation_mean']:.2f} | "
                     f"{curve['best_step']} | {last} | {mean_std(tests) if tests else '-'} | {diff} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", action="append", required=True, metavar="LABEL=GLOB",
                    help="a method's run folders (one per seed); the first is the reference; repeat a label to add a glob")
    ap.add_argument("--png", type=Path, help="write the curves here")
    ap.add_argument("--title", default="learning curves")
    args = ap.parse_args()
    methods = gather(args.method)
    curves = {label: method_curve(runs) for label, runs in methods.items()}
    print("At equal steps (validation, mean ± std over seeds):\n\n" + at_steps(curves))
    print("\nAt equal train time (each seed's last evaluation within the budget):\n\n" + at_time(curves))
    print("\nAt each method's best point:\n\n" + best(methods, curves))
    if args.png:
        plot_curves(curves, args.png, args.title)
        print(f"\ncurves: {args.png}")


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
