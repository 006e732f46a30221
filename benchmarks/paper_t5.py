"""GPU recipe: the MEPT paper's SuperGLUE tables (Table 1: per task; Table 6: mixture training).

Needs internet (the backbone and SuperGLUE from the Hugging Face hub) and a GPU.

    python benchmarks/paper_t5.py --dry-run                         # print the mept commands, run nothing
    python benchmarks/paper_t5.py --table 1                         # Table 1, T5-Base: 5 methods x 6 tasks, 3 seeds
    python benchmarks/paper_t5.py --table 1 --backbone t5-large     # Table 1, T5-Large
    python benchmarks/paper_t5.py --table 1 --backbone llama-3.2-1b # Table 1, Llama-3.2-1B (score head trained)
    python benchmarks/paper_t5.py --table 6                         # Table 6: 4 methods on the mixture of the 6 tasks
    python benchmarks/paper_t5.py --collect                         # print the tables from finished runs only
    python benchmarks/paper_t5.py --table 1 --methods mept --tasks rte cb --epochs 20   # a cheaper slice
    python benchmarks/paper_t5.py --table 1 --methods mept --paper-search   # MEPT's m, N_r, lr searched per task

Every run is ``mept train --paper ...`` (``TrainConfig.paper_mode``): the paper's stated settings
(no balance loss, top-1, one shared expert, Xavier normal, 70 epochs and batch 32 of its 16-32
(Sec. 4.3), max length 512 including prompts (Appendix B.3), its lr grid (Appendix B.2):
1e-5/5e-5/1e-4 for MEPT, 0.1/0.3/0.5 for the other prompt methods). The best lr on the validation
split (10% of train: the authors' code's split; the paper names none) is re-run with every seed,
and the score reported is on the official validation set (our ``test`` split), the paper's
"SuperGLUE development set" (Table 1). Runs already finished (``metrics.json`` present) are
skipped, so the script can be restarted. The paper's numbers (``paper_numbers.py``) are printed
beside ours -- its averages as it printed them (three differ from the mean of their cells: see
``paper_numbers.PRINTED_AVERAGE_DIFFERS``) -- with MEPT's paired difference to each baseline over
seeds (t-test, bootstrap interval, and the Holm-adjusted p over those tests).

MEPT's m and N_r: the paper searches m in {10, 15, 20} and N_r in {4, 10, 20} per task (Sec. 4.3)
with its lr grid; ``--paper-search`` does that (27 runs per task, best on validation, test scored
once, the choice printed and in ``metrics.json``). Without it MEPT runs one setting, N_r = m = 10:
ours, a point of that grid, 9x cheaper.

Known differences from the paper (choices it leaves open, and rows left out):
- AdamW (ours); the authors' code uses Adafactor; the paper names no optimiser.
- T5 is scored by generation + exact match (``--eval-mode generate``, the authors' code's
  protocol; the paper does not say; ``--eval-mode rank`` ranks the verbalizer words instead).
- P-Tuning v2 has 100 prompts per layer (the paper's Appendix B.6: "10 prompts in MEPT vs. 100
  prompts in P-Tuning v2"); the lengths of prompt tuning, SMoP and VFPT are not stated and are ours
  or their authors' (``METHOD_FLAGS``).
- Table 1's fine-tuning rows (quoted by the paper from Aribandi et al. 2022), its XPrompt, ResPrompt,
  DePT, SuperPos-Prompt and EPT rows, and the Llama table's "linear head" row are not run here
  (the README's "What the library does not reproduce" says why).
- MultiRC F1a is SuperGLUE's (F1 over all answer options); the paper's Table 7 calls F1a "the
  macro F1 score" and the authors' code computes a macro-F1 (see ``mept.data.metrics``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import paper_numbers as P  # benchmarks/paper_numbers.py: the paper's figures, from its text
from common import mean_std
from script import run_command  # benchmarks/script.py: a failed child run is one error line

from mept.cli.flags import ListFlag
from mept.harness.stats import adjust_family, describe, paired_test

TASKS = list(P.SUPERGLUE6)  # the six of the paper's tables; "wsc" (named in its Sec. 4.1, in no table) with --tasks
ALL_TASKS = TASKS + ["wsc"]
METHODS = ["prompt_tuning", "ptuning_v2", "smop", "vfpt", "mept"]
MIXTURE_METHODS = ["prompt_tuning", "ptuning_v2", "smop", "mept"]  # Table 6's four
METHOD_FLAGS = {  # prompt length / experts per method; whose choice each is
    "prompt_tuning": ["--prompt-length", "100"],  # ours: the usual length (the paper states none)
    "ptuning_v2": ["--prompt-length", "100"],  # the paper's (Appendix B.6: 100 prompts in P-Tuning v2)
    "smop": ["--prompt-length", "5", "--experts", "4"],  # SMoP's README: 4 prompts x 5 tokens (the paper states none)
    "vfpt": ["--prompt-length", "50"],  # ours: 50 x 768 x 12 layers = 0.21% of T5-Base, the paper's VFPT Para
    "mept": ["--prompt-length", "10", "--experts", "10"],  # ours: one point of the paper's search (what --paper sets)
}
PAPER_SEARCH_FLAGS = ["--paper-search"]  # MEPT with --paper-search: m, N_r and lr searched per task, as the paper does
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
    def flags(method: str) -> list[str]:
        return PAPER_SEARCH_FLAGS if method == "mept" and args.paper_search else METHOD_FLAGS[method]

    if args.table == "1":
        for method in args.methods:
            for task in args.tasks:
                run = root / "table1" / run_name(method, args) / task
                out.append((str(run), ["mept", "train", "--method", method, "--task", task, *flags(method),
                                       *common, "--output", str(run)]))
    else:
        for method in [m for m in args.methods if m in MIXTURE_METHODS]:
            run = root / "table6" / run_name(method, args)
            out.append((str(run), ["mept", "train", "--method", method, "--tasks", *args.tasks, *flags(method),
                                   *common, "--output", str(run)]))
    return out


def run_name(method: str, args) -> str:
    """The folder of a method's runs: MEPT searched as the paper does is kept apart from our fixed setting."""
    return "mept-paper-search" if method == "mept" and args.paper_search else method


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
    return mean_std(values, 1, "not run")


def paper_row(table: str, backbone: str, method: str) -> dict[str, float]:
    rows = PAPER["1"].get(backbone, {}) if table == "1" else PAPER["6"]
    return rows.get(method, {})


def paper_cell(table: str, backbone: str, method: str, task: str) -> str:
    value = paper_row(table, backbone, method).get(task)
    return "-" if value is None else f"{value:.1f}"


def paper_average(table: str, backbone: str, method: str, tasks: list[str]) -> str:
    """The paper's average as it printed it (six tasks), or the mean of the shown cells for a subset, marked so."""
    row = paper_row(table, backbone, method)
    if not row:
        return "-"
    if sorted(tasks) == sorted(P.SUPERGLUE6):
        differs = P.PRINTED_AVERAGE_DIFFERS.get((backbone, method)) if table == "1" else None
        note = f" (printed; its cells average {differs[1]:.3f})" if differs and abs(differs[0] - differs[1]) > 0.01 else ""
        return f"{P.printed_average(row):.2f}{note}"
    known = [row[t] for t in tasks if t in row]
    return f"{statistics.fmean(known):.1f} (mean of these cells)" if len(known) == len(tasks) else "-"


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
    chosen: dict[str, str] = {}
    for method in methods:
        folder = root / ("table1" if args.table == "1" else "table6") / run_name(method, args)
        per_task = {t: seed_scores(folder / (t if args.table == "1" else ""), t) for t in args.tasks}
        if method == "mept" and args.paper_search:
            chosen = search_choices(folder, args.tasks if args.table == "1" else [""])
        seeds = sorted(set.intersection(*(set(s) for s in per_task.values()))) if per_task else []
        if seeds and all(per_task[t] for t in args.tasks):
            per_seed_avg[method] = [statistics.fmean(per_task[t][s] for t in args.tasks) for s in seeds]
        avg = fmt(per_seed_avg.get(method, []))
        print(f"| {method} (ours) | " + " | ".join(fmt(list(per_task[t].values())) for t in args.tasks) + f" | {avg} |")
        paper = [paper_cell(args.table, args.backbone, method, t) for t in args.tasks]
        print(f"| {method} (paper) | " + " | ".join(paper)
              + f" | {paper_average(args.table, args.backbone, method, args.tasks)} |")
    if chosen:
        print("\nMEPT's paper search chose (m, N_r, lr; on validation, per task): "
              + "; ".join(f"{task or 'mixture'}: {what}" for task, what in chosen.items()))
    elif "mept" in per_seed_avg:
        print("\nMEPT: N_r = m = 10 (ours; --paper-search searches as the paper does)")
    if "mept" in per_seed_avg:
        print("\nMEPT against each baseline, task average paired by seed (Holm-adjusted over these tests):")
        tests = adjust_family({method: paired_test(per_seed_avg["mept"], values) for method, values in per_seed_avg.items()
                               if method != "mept" and len(values) == len(per_seed_avg["mept"])})
        for method, test in tests.items():
            print(describe(test, "mept", method))
        print(f"(paper: {P.SIGNIFICANCE})")


def search_choices(folder: Path, tasks: list[str]) -> dict[str, str]:
    """What ``--paper-search`` chose for each task's run (its ``metrics.json`` 'search' block)."""
    out = {}
    for task in tasks:
        path = folder / task / "metrics.json"
        if path.exists():
            c = json.loads(path.read_text()).get("search", {}).get("chosen")
            if c:
                out[task] = f"m = {c['prompt_length']}, N_r = {c['experts']}, lr {c['lr']:g}"
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", choices=["1", "6"], default="1")
    ap.add_argument("--backbone", choices=list(BACKBONES), default="t5-base")
    ap.add_argument("--methods", action=ListFlag, default=METHODS, choices=METHODS)
    ap.add_argument("--tasks", action=ListFlag, default=TASKS, choices=ALL_TASKS)
    ap.add_argument("--epochs", type=float, default=70, help="paper: 70")
    ap.add_argument("--batch-size", type=int, default=32, help="paper: 16-32")
    ap.add_argument("--seeds", type=int, action=ListFlag, default=[1, 2, 3], help="any number (paper: 3 runs)")
    ap.add_argument("--eval-mode", choices=["generate", "rank"], default="generate",
                    help="T5: generate + exact match (the authors' code) or rank the verbalizer words")
    ap.add_argument("--bf16", action="store_true", help="bf16 mixed precision (Ampere+ GPUs)")
    ap.add_argument("--paper-search", action="store_true",
                    help="MEPT: search m {10,15,20} x N_r {4,10,20} x its lr grid per task as the paper does (Sec. 4.3, "
                         "27 runs per task) instead of our fixed N_r = m = 10")
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
                run_command(cmd)
    if not args.dry_run:
        print_tables(args)


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
