"""Write a BIG-bench classification task as train / val / test CSVs, for ``mept compare`` on real files.

    python benchmarks/bigbench_csv.py multiemo/hotels_text_en --out ~/.cache/mept/csv/hotels
    mept compare --train-file ~/.cache/mept/csv/hotels/train.csv --val-file .../val.csv --test-file .../test.csv

Reads ``task.json`` from the cached ``bigbench==1.0.0`` tarball (``mept.data.bigbench``), takes each
example's top-scored choice as its label, shuffles with a fixed seed (many files are sorted by class)
and splits it. Write the CSVs into a cache folder, never into the repository: the files carry
BIG-bench's canary asking that they never enter training corpora.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import Counter
from pathlib import Path

from mept.data.bigbench import read_task


def examples(task: str) -> list[tuple[str, str]]:
    rows = []
    for ex in read_task(task)["examples"]:
        scores = ex.get("target_scores")
        if not scores:
            continue
        label = max(scores, key=scores.get)
        rows.append((" ".join(ex["input"].split()), label.strip()))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", help="BIG-bench task path, e.g. multiemo/hotels_text_en")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", type=int, nargs=3, default=[1000, 200, 500], metavar=("TRAIN", "VAL", "TEST"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = examples(args.task)
    random.Random(args.seed).shuffle(rows)
    n_train, n_val, n_test = args.sizes
    if len(rows) < n_train + n_val + n_test:
        raise SystemExit(f"error: {args.task} has {len(rows)} examples, fewer than {n_train + n_val + n_test}")
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": rows[:n_train], "val": rows[n_train:n_train + n_val],
              "test": rows[n_train + n_val:n_train + n_val + n_test]}
    for name, part in splits.items():
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(part)
        counts = Counter(label for _, label in part)
        print(f"{name}: {len(part)} examples, labels {dict(counts)}, majority {100 * max(counts.values()) / len(part):.1f}%")


if __name__ == "__main__":
    main()
