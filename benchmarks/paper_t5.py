"""GPU recipe: the MEPT paper's SuperGLUE tables (Table 1: per task; Table 6: mixture training).

Needs internet (the backbone and SuperGLUE from the Hugging Face hub) and a GPU.

    python benchmarks/paper_t5.py --dry-run                         # print the mept commands, run nothing
    python benchmarks/paper_t5.py --table 1                         # Table 1, T5-Base: 5 methods x 6 tasks, 3 seeds
    python benchmarks/paper_t5.py --table 1 --backbone t5-large     # Table 1, T5-Large
    python benchmarks/paper_t5.py --table 1 --backbone llama-3.2-1b # Table 1, Llama-3.2-1B (score head trained)
    python benchmarks/paper_t5.py --table 6                         # Table 6: 4 methods on the mixture of the 6 tasks
    python benchmarks/paper_t5.py --collect                         # print the tables from finished runs only
    python benchmarks/paper_t5.py --table 1 --methods mept --tasks rte cb --epochs 20   # a cheaper slice

Every run is ``mept train --paper ...`` (``TrainConfig.paper_mode``): the paper's stated settings
(no balance loss, top-1, one shared expert, Xavier normal, 70 epochs, batch 32 of its 16-32, max
length 512 including prompts, its lr grid: 1e-5/5e-5/1e-4 for MEPT, 0.1/0.3/0.5 for the other
prompt methods). The best lr on the validation split (10% of train) is re-run with every seed,
and the score reported is on the official validation set (our ``test`` split), as in the authors'
code. Runs already finished (``metrics.json`` present) are skipped, so the script can be restarted.
The paper's numbers (``paper_numbers.py``, from PAPER.md) are printed beside ours, with MEPT's
paired difference to each baseline over seeds (t-test and bootstrap interval).

Known differences from the paper (choices it leaves open, and one row left out):
- AdamW (ours); the authors' code uses Adafactor.
- T5 is scored by generation + exact match (``--eval-mode generate``, the authors' code's
  protocol; ``--eval-mode rank`` ranks the verbalizer words instead).
- Prompt lengths of the baselines are ours (``METHOD_FLAGS``); MEPT N_r = m = 10 is from the
  paper's grids (the combination its "Para" of 0.13% corresponds to).
- The Llama table's "linear head" row (a head without prompts) is not run here.
- MultiRC F1a is the official one; the authors' code computes a macro-F1 (see ``mept.data.metrics``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import paper_numbers as P  # benchmarks/paper_numbers.py: the paper's figures (PAPER.md)

from mept.stats import describe, paired_test

TASKS = list(P.SUPERGLUE6)  # the paper's six; "wsc" may be added with --tasks (beyond the paper)
ALL_TASKS = TASKS + ["wsc"]
METHODS = ["prompt_tuning", "ptuning_v2", "smop", "vfpt", "mept"]
MIXTURE_METHODS = ["prompt_tuning", "ptuning_v2", "smop", "mept"]  # Table 6's four
METHOD_FLAGS = {  # prompt length / experts per method; whose choice each is
    "prompt_tuning": ["--prompt-length", "100"],  # ours: the usual length
    "ptuning_v2": ["--prompt-length", "100"],  # ours: the usual length
    "smop": ["--prompt-length", "5", "--experts", "4"],  # SMoP's README: 4 prompts x 5 tokens
    "vfpt": ["--prompt-length", "50"],  # ours: 50 x 768 x 12 layers = 0.21% of T5-Base, the paper's VFPT Para
    "mept": ["--prompt-length", "10", "--experts", "10"],  # the paper's grids (also what --paper sets)
}
BACKBONES = {  # --backbone: the model and its output form
    "t5-base": ["--model", "t5-base", "--format", "seq2seq"],
    "t5-large": ["--model", "t5-large", "--format", "seq2seq"],
    "llama-3.2-1b": ["--model", "meta-llama/Llama-3.2-1B", "--format", "cls"],  # the score head trains (default)
}
PAPER = {"1": P.TABLE1, "6": P.TABLE6}  # the paper's numbers, per table (kept under this name for readers)


def commands(args) -> list[tuple[str, list[str]]]:
    common = ["--paper", *BACKBONES[args.backbone], "--source", "hub", "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--seeds", *map(str, args.seeds), "--no-progress"]
    if BACKBONES[args.backbone][-1] == "seq2seq":
        common += ["--eval-mode", args.eval_mode]
    if args.bf16:
        common += ["--mixed-precision", "bf16"]
    root = Path(args.output) / args.backbone
    out = []
    if args.table == "1":
        for method in args.methods:
            for task in args.tasks:
                run = root / "table1" / method / task
                out.append((str(run), ["mept", "train", "--method", method, "--task", task, *METHOD_FLAGS[method],
                                       *common, "--output", str(run)]))
    else:
        for method in [m for m in args.methods if m in MIXTURE_METHODS]:
            run = root / "table6" / method
            out.append((str(run), ["mept", "train", "--method", method, "--tasks", *args.tasks, *METHOD_FLAGS[method],
                                   *common, "--output", str(run)]))
    return out


def seed_scores(run: Path, task: str) -> dict[int, float]:
    """Per seed: ``task``'s score on the official validation set (our test split), from metrics.json."""
    scores = {}
    for path in sorted(run.glob("seed-*/metrics.json")):
        m = json.loads(path.read_text())
        source = (m.get("test") or {}).get("tasks") or m["tasks"]
        if task in source:
            scores[m["seed"]] = source[task]["score"]
    return scores


def fmt(values: list[float]) -> str:
    if not values:
        return "not run"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {std:.1f}"


def paper_cell(table: str, backbone: str, method: str, task: str) -> str:
    rows = PAPER["1"].get(backbone, {}) if table == "1" else PAPER["6"]
    value = rows.get(method, {}).get(task)
    return "-" if value is None else f"{value:.1f}"


def print_tables(args) -> None:
    root = Path(args.output) / args.backbone
    methods = args.methods if args.table == "1" else [m for m in args.methods if m in MIXTURE_METHODS]
    head = "| method | " + " | ".join(args.tasks) + " | avg |"
    rule = "|---|" + "---:|" * (len(args.tasks) + 1)
    title = (f"Table 1: {args.backbone}, single-task" if args.table == "1"
             else "Table 6: T5-Base, mixture training of the six tasks")
    print(f"\n#### {title}, SuperGLUE validation (ours: mean ± std over seeds; paper: its table)\n")
    print(head + "\n" + rule)
    per_seed_avg: dict[str, list[float]] = {}
    for method in methods:
        per_task = {t: seed_scores(root / ("table1" if args.table == "1" else "table6")
                                   / method / (t if args.table == "1" else ""), t) for t in args.tasks}
        seeds = sorted(set.intersection(*(set(s) for s in per_task.values()))) if per_task else []
        if seeds and all(per_task[t] for t in args.tasks):
            per_seed_avg[method] = [statistics.fmean(per_task[t][s] for t in args.tasks) for s in seeds]
        avg = fmt(per_seed_avg.get(method, []))
        print(f"| {method} (ours) | " + " | ".join(fmt(list(per_task[t].values())) for t in args.tasks) + f" | {avg} |")
        paper = [paper_cell(args.table, args.backbone, method, t) for t in args.tasks]
        known = [float(c) for c in paper if c != "-"]
        paper_avg = f"{statistics.fmean(known):.1f}" if len(known) == len(paper) else "-"
        print(f"| {method} (paper) | " + " | ".join(paper) + f" | {paper_avg} |")
    if "mept" in per_seed_avg:
        print("\nMEPT against each baseline, task average paired by seed:")
        for method, values in per_seed_avg.items():
            if method != "mept" and len(values) == len(per_seed_avg["mept"]):
                print(describe(paired_test(per_seed_avg["mept"], values), "mept", method))
        print(f"(paper: {P.SIGNIFICANCE})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", choices=["1", "6"], default="1")
    ap.add_argument("--backbone", choices=list(BACKBONES), default="t5-base")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--tasks", nargs="+", default=TASKS, choices=ALL_TASKS)
    ap.add_argument("--epochs", type=float, default=70, help="paper: 70")
    ap.add_argument("--batch-size", type=int, default=32, help="paper: 16-32")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="any number (paper: 3 runs)")
    ap.add_argument("--eval-mode", choices=["generate", "rank"], default="generate",
                    help="T5: generate + exact match (the authors' code) or rank the verbalizer words")
    ap.add_argument("--bf16", action="store_true", help="bf16 mixed precision (Ampere+ GPUs)")
    ap.add_argument("--output", default="runs/paper_t5")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    ap.add_argument("--collect", action="store_true", help="print the tables from finished runs, train nothing")
    args = ap.parse_args(argv)
    if args.table == "6" and args.backbone != "t5-base":
        ap.error("Table 6 is T5-Base only in the paper")
    if not args.collect:
        for run, cmd in commands(args):
            if (Path(run) / "metrics.json").exists():
                print(f"done already: {run}", file=sys.stderr)
                continue
            print(shlex.join(cmd), flush=True)
            if not args.dry_run:
                subprocess.run(cmd, check=True)
    if not args.dry_run:
        print_tables(args)


if __name__ == "__main__":
    main()
