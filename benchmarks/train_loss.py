"""Did a run train? The mean training loss over the last fifth of a run, read from its `mept train` log.

A run whose validation score stays near the majority class can be one that fits its training data and does
not generalise, or one that never fits it; only the training loss tells them apart. `mept train` prints the
loss of the current batch with every progress line (about every 30 seconds) and every evaluation; this script
takes those of the last fifth of the steps and prints their mean, one row per log, grouped by a label:

    python benchmarks/train_loss.py --variant 'lr 1e-2'='logs/log-mpnet-winowhy-lc6-s*.txt' \\
        --variant 'lr 5e-3'='logs/log-mpnet-winowhy-lc6lr5-s*.txt'

Each logged loss is one batch's (16 examples here), so a mean of 7-9 of them is a coarse figure: good for
"at chance (ln 2 = 0.69 on two classes) or well below it", not for small differences.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from variant_globs import labelled_paths  # benchmarks/variant_globs.py

STEP = re.compile(r"step\s+(\d+)/(\d+)\s+loss\s+([0-9.]+)")


def logged_losses(text: str) -> tuple[dict[int, float], int]:
    """The loss printed at each step (the last one printed for a step wins) and the run's total steps."""
    losses: dict[int, float] = {}
    total = 0
    for match in STEP.finditer(text):
        losses[int(match[1])] = float(match[3])
        total = int(match[2])
    return losses, total


def last_fifth_mean(text: str) -> tuple[float, int] | None:
    """Mean of the losses logged after 80% of the steps, and how many there were; None if the log has none."""
    losses, total = logged_losses(text)
    tail = [loss for step, loss in losses.items() if step > 0.8 * total]
    return (statistics.fmean(tail), len(tail)) if tail else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", required=True, metavar="LABEL=GLOB",
                    help="the logs of one setting (one per seed); give a label again to add another glob")
    args = ap.parse_args(argv)
    variants = labelled_paths(args.variant, "--variant", "log", keep=Path.is_file)
    print("| variant | log | train loss, last fifth (points) |\n|---|---|---:|")
    for label, paths in variants.items():
        for path in paths:
            found = last_fifth_mean(path.read_text(errors="replace"))
            figure = f"{found[0]:.2f} ({found[1]})" if found else "no logged loss"
            print(f"| {label} | {path.name} | {figure} |")
    return 0


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
