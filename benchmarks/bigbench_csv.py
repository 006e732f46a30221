"""Write a BIG-bench classification task as train / val / test CSVs, for ``mept compare`` on real files.

    python benchmarks/bigbench_csv.py multiemo/hotels_text_en --out ~/.cache/mept/csv/hotels
    mept compare --train-file ~/.cache/mept/csv/hotels/train.csv --val-file .../val.csv --test-file .../test.csv

Reads ``task.json`` from the cached ``bigbench==1.0.0`` tarball (``mept.data.bigbench``), takes each
example's top-scored choice as its label, shuffles with a fixed seed (many files are sorted by class)
and splits it. Write the CSVs into a cache folder, never into the repository: the files carry
BIG-bench's canary asking that they never enter training corpora.

A folder that already holds a ``train.csv``, ``val.csv`` or ``test.csv`` is rewritten only if this script
wrote it (``bigbench_csv.json`` beside them says so); anyone else's files are refused, not replaced.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import Counter
from pathlib import Path

from script import fail  # benchmarks/script.py

from mept.data.bigbench import read_task

SPLITS = ("train", "val", "test")
MARK = "bigbench_csv.json"  # written first: the folder's CSVs are this script's to rewrite


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
    ap.add_argument("--more-train", type=int, default=0, metavar="N",
                    help="add N training examples from beyond the test split: val and test stay those of --sizes, "
                         "so runs with and without it score on the same examples")
    args = ap.parse_args(argv)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; name a folder")
    theirs = [name for name in SPLITS if (out / f"{name}.csv").exists()]
    if theirs and not (out / MARK).is_file():
        fail(f"--out {out} already holds {', '.join(f'{n}.csv' for n in theirs)}, not written by this script "
             f"(no {MARK}); choose another folder")
    if min(args.sizes) < 1:
        fail(f"--sizes {' '.join(map(str, args.sizes))}: each split needs at least 1 example")
    if args.more_train < 0:
        fail(f"--more-train {args.more_train}: give 0 or more examples")
    rows = examples(args.task)
    random.Random(args.seed).shuffle(rows)
    n_train, n_val, n_test = args.sizes
    end = n_train + n_val + n_test  # where the test split ends and --more-train's examples start
    needed = end + args.more_train
    if len(rows) < needed:
        fail(f"{args.task} has {len(rows)} labelled examples, fewer than --sizes and --more-train ask ({needed}); "
             f"ask for fewer")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).write_text(json.dumps({"task": args.task, "sizes": args.sizes, "seed": args.seed,
                                        "more_train": args.more_train}) + "\n")
    splits = {"train": rows[:n_train] + rows[end:needed], "val": rows[n_train:n_train + n_val],
              "test": rows[n_train + n_val:end]}
    for name, part in splits.items():
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(part)
        counts = Counter(label for _, label in part)
        print(f"{name}: {len(part)} examples, labels {dict(counts)}, majority {100 * max(counts.values()) / len(part):.1f}%")


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
