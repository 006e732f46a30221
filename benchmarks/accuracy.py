"""Accuracy of every prompt method on the offline bb-superglue suite with MiniLM, same budget each.

    python benchmarks/accuracy.py                 # default budget (see below), 3 seeds; ~50-60 min on 2 idle cores
    python benchmarks/accuracy.py --quick         # smoke test: 2 tasks, 1 seed, 6 steps/task (a few minutes)
    python benchmarks/accuracy.py --tasks bb-superglue --steps-per-task 300 --text-length 256 \\
        --max-eval-examples 300 --seeds 1 2 3      # a real comparison (hours on CPU, minutes on a GPU)

What runs (every run through ``mept.harness.train.train`` / ``TrainConfig``):

- every method trained on the *mixture* of the tasks (one run, one shared head,
  evaluated per task), for ``steps_per_task x n_tasks`` steps;
- MEPT trained *separately* per task for ``steps_per_task`` steps each (equal
  total examples), to compare mixture vs separate training;
- majority class (``metrics["majority"]``: the most frequent training label);
- full fine-tuning of the same backbone (``--method full``: all weights trainable, AdamW, its
  own lr), the same harness, steps and batches (checkpoint picked on validation, as for every method).

Budget: the same ``--steps-per-task``, ``--batch-size`` and text length for
every method. ``--text-length`` is the text-token budget, passed as ``max_length`` (which
counts text tokens only; the prompt slots come on top), so P-Tuning v2's 100 prompts do not
eat the text. Learning rate per method family: the library's
default for prompt methods (``TrainConfig.default_lr()``, AdamW), ``--lr-ft`` for
full fine-tuning; the library's default head lr for all.

Default budget (keeps the default run under ~60 min on 2 idle CPU cores):
tasks bb-cb bb-wsc bb-rte, 100 steps per task, batch 16, text length 96,
at most 400 training and 100 validation examples per task, seeds 1 2 3.
This is a *small* budget: prompt tuning is far from converged after 300 steps.
Scale up with ``--tasks bb-superglue --steps-per-task N --text-length L
--max-train-examples N --max-eval-examples N --seeds ...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mept.cli.flags import ListFlag
from mept.harness.train import train
from mept.harness.train_config import TrainConfig

METHODS = ["prompt_tuning", "ptuning_v2", "smop", "mept", "vfpt", "ptmoe"]
METHOD_SETTINGS: dict[str, dict[str, Any]] = {  # as in benchmarks/speed.py
    "prompt_tuning": {"prompt_length": 10},
    "ptuning_v2": {"prompt_length": 100},
    "smop": {},
    "mept": {"num_experts": 10, "prompt_length": 10},
    "vfpt": {"prompt_length": 10},
    "ptmoe": {},
    "full": {},  # full fine-tuning (mept.baselines.full): every weight, its own lr (--lr-ft)
}


def base_config(args, method: str, tasks: list[str], seed: int, steps: int, out: Path) -> TrainConfig:
    return TrainConfig(
        method=method, model=args.model, tasks=tasks, method_args=dict(METHOD_SETTINGS[method]),
        max_steps=steps, batch_size=args.batch_size, lr=args.lr_ft if method == "full" else args.lr,
        max_length=args.text_length,  # text tokens for every method; the slots come on top
        max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
        seed=seed, output=str(out), overwrite=True, progress=False, save_every=10**9,
    )


def run_prompt(args, method: str, tasks: list[str], seed: int, steps: int, out: Path) -> dict[str, Any]:
    """One run through the library's harness (prompt methods and ``--method full`` alike)."""
    m = train(base_config(args, method, tasks, seed, steps, out))
    return {"tasks": {t: r["score"] for t, r in m["tasks"].items()}, "majority": m["majority"],
            "seconds": m["timing"]["train_seconds"], "trainable": m["trainable_params"]}


def mean_std(xs: list[float]) -> str:
    """Scores are already on a 0-100 scale (mept.data.metrics)."""
    if len(xs) == 1:
        return f"{xs[0]:.1f}"
    return f"{statistics.fmean(xs):.1f} ± {statistics.stdev(xs):.1f}"


def table(rows: dict[str, list[dict[str, Any]]], tasks: list[str]) -> str:
    short = [t.replace("bb-", "") for t in tasks]
    lines = ["| method | trainable | " + " | ".join(short) + " | average | train s/run |",
             "|---|---:|" + "---:|" * (len(tasks) + 2)]
    for name, runs in rows.items():
        cells = [mean_std([r["tasks"][t] for r in runs]) for t in tasks]
        avg = mean_std([statistics.fmean(r["tasks"][t] for t in tasks) for r in runs])
        trainable = f"{runs[0]['trainable']:,}" if runs[0].get("trainable") is not None else "-"
        secs = f"{statistics.fmean(r['seconds'] for r in runs):.0f}" if runs[0].get("seconds") is not None else "-"
        lines.append(f"| {name} | {trainable} | " + " | ".join(cells) + f" | {avg} | {secs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--tasks", action=ListFlag, default=["bb-cb", "bb-wsc", "bb-rte"])
    ap.add_argument("--methods", action=ListFlag, default=METHODS, choices=METHODS)
    ap.add_argument("--seeds", type=int, action=ListFlag, default=[1, 2, 3])
    ap.add_argument("--steps-per-task", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--text-length", type=int, default=96, help="text tokens (max_length); prompt slots come on top")
    ap.add_argument("--max-train-examples", type=int, default=400, help="per task")
    ap.add_argument("--max-eval-examples", type=int, default=100, help="per task")
    ap.add_argument("--lr", type=float, default=None, help="prompt methods (default: TrainConfig.default_lr())")
    ap.add_argument("--lr-ft", type=float, default=5e-5, help="full fine-tuning backbone lr (--method full)")
    ap.add_argument("--no-full-ft", action="store_true")
    ap.add_argument("--no-separate", action="store_true", help="skip MEPT per-task (separate) training")
    ap.add_argument("--output", help="keep run folders here (default: a temp folder, deleted)")
    ap.add_argument("--json", help="write all per-run numbers to this file")
    ap.add_argument("--quick", action="store_true", help="2 tasks, 1 seed, 6 steps/task, short texts: smoke test")
    ap.add_argument("--table-from", metavar="JSON", help="print the table of an earlier --json file, train nothing")
    args = ap.parse_args(argv)
    from mept.harness.prepare_run import expand_tasks

    if args.table_from:
        saved = json.loads(Path(args.table_from).read_text())
        print(table(saved["rows"], expand_tasks(saved["args"]["tasks"])))
        return
    if args.quick:
        args.tasks, args.seeds, args.steps_per_task = ["bb-cb", "bb-rte"], [1], 6
        args.text_length, args.max_train_examples, args.max_eval_examples = 64, 64, 32
    tasks = expand_tasks(args.tasks)
    root_ctx = tempfile.TemporaryDirectory(prefix="mept-acc-") if not args.output else None
    root = Path(args.output or root_ctx.name)
    mix_steps = args.steps_per_task * len(tasks)
    rows: dict[str, list[dict[str, Any]]] = {"majority class": []}  # first row: the floor to beat
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.0f}s] {msg}", file=sys.stderr, flush=True)

    for method in args.methods:
        for seed in args.seeds:
            r = run_prompt(args, method, tasks, seed, mix_steps, root / f"{method}-mix-s{seed}")
            rows.setdefault(f"{method} (mixture)", []).append(r)
            rows.setdefault("majority class", []).append({"tasks": r["majority"], "trainable": None, "seconds": None})
            log(f"{method} mixture seed {seed}: {r['tasks']}")
    if "mept" in args.methods and not args.no_separate and len(tasks) > 1:
        for seed in args.seeds:
            per_task: dict[str, float] = {}
            seconds = 0.0
            for t in tasks:
                r = run_prompt(args, "mept", [t], seed, args.steps_per_task, root / f"mept-{t}-s{seed}")
                per_task.update(r["tasks"])
                seconds += r["seconds"]
            rows.setdefault("mept (separate per task)", []).append(
                {"tasks": per_task, "seconds": seconds, "trainable": r["trainable"]})
            log(f"mept separate seed {seed}: {per_task}")
    if not args.no_full_ft:
        for seed in args.seeds:
            r = run_prompt(args, "full", tasks, seed, mix_steps, root / f"fullft-s{seed}")
            rows.setdefault("full fine-tuning (mixture)", []).append(r)
            log(f"full FT seed {seed}: {r['tasks']}")
    # the majority baseline does not depend on the method or seed: keep one row
    rows["majority class"] = rows["majority class"][:1]
    label = "QUICK smoke run (not a result)" if args.quick else "budget run"
    print(f"\n#### Accuracy on {', '.join(tasks)} with {args.model} ({label}): {args.steps_per_task} steps/task, "
          f"batch {args.batch_size}, text length {args.text_length}, <= {args.max_train_examples} train / "
          f"{args.max_eval_examples} validation examples per task, seeds {args.seeds}; score "
          f"(0-100, mean ± std over seeds), bb-cb = mean of accuracy and macro-F1\n")
    print(table(rows, tasks))
    print(f"\ntotal wall time {time.perf_counter() - start:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    if root_ctx is not None:
        root_ctx.cleanup()


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
