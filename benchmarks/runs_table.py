"""Tabulate `mept train` run folders by variant: test and best validation per seed, paired tests against a reference.

Each ``--variant LABEL=GLOB`` names the run folders of one setting (one folder per task and seed, both read
from its ``metrics.json``), or records this script wrote before (``RUN.json``). Rows are paired by (task, seed)
with the first variant (the reference): the mean difference and its paired t-test p
(``mept.harness.stats.paired_test``). A glob that spans several tasks gives the pooled comparison (every task x
seed pair), the way the studies report "pooled over the tasks, paired". Routing health is the last evaluation's
(collapsed layers: one expert takes >= 90% of the validation examples) and the test set's. With ``--records
DIR`` every run's record (its settings, validation per evaluation, test, routing, timing) is written as JSON
beside the table, so the table can be rebuilt and checked without the run folders.

``--pick LABEL`` makes a variant a choice made on validation, the way a user tunes: its globs may match several
runs of one (task, seed) (an lr or prompt-length grid), and the one with the highest best validation stands for
it (a tie keeps the run matched first). The test set never enters the choice; the picks are listed under the table.

    python benchmarks/runs_table.py --variant native='runs/hs/mpnet-colorhex-native-s*' \\
        --variant linear='runs/hs/mpnet-colorhex-linear-s*' --records benchmarks/results/head_study
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from common import mean_std, paired_text  # benchmarks/common.py
from script import fail  # benchmarks/script.py
from variant_globs import labelled_paths

from mept.harness.stats import paired_test


def _or_dash(value: Any) -> str:
    """A cell of a value a run may not have (collapsed layers of a method without a router): ``-``, not ``None``."""
    return "-" if value is None else str(value)


def record(folder: Path) -> dict[str, Any]:
    """What one run folder says about its run: settings, per-evaluation validation, test, routing, time."""
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "run_config.json").read_text())
    # a task without a test split (bb-diverse and the other BIG-bench suites: train and validation only) is
    # scored where mept train scored it, on validation at the checkpoint chosen there (the paper's SuperGLUE
    # numbers are development-set numbers too); the record says which, and the table says so under it
    test = metrics.get("test")
    scored = test if test else {"average": metrics["average"], "routing": metrics.get("routing"),
                                "tasks": metrics.get("tasks")}
    routing = scored.get("routing") or {}
    layers = routing.get("layers") or []
    pairs = list((routing.get("pathway_cosine") or {}).values())  # a mixture's tasks, two at a time
    return {
        "run": folder.name,
        "method": metrics["method"],
        "model": metrics["model"],
        "task": ",".join(metrics["tasks"]),
        "seed": metrics["seed"],
        "lr": metrics["lr"],
        "settings": {k: config.get(k) for k in ("head", "head_pooling", "head_lr", "max_length", "batch_size",
                                                "epochs", "max_steps", "method_args")},
        "validation_per_eval": [[h["step"], round(h["validation"], 2)] for h in metrics.get("history", [])],
        "best_validation": round(metrics["average"], 2),
        "test": round(scored["average"], 2),
        "scored_on": "test" if test else "validation (no test split)",
        "per_task": {task: round(result["score"], 2) for task, result in (scored.get("tasks") or {}).items()
                     if isinstance(result, dict) and "score" in result},
        "majority": metrics.get("majority"),
        "collapsed_layers_last_eval": (metrics.get("history") or [{}])[-1].get("collapsed_layers"),
        "collapsed_layers_test": sum(1 for layer in layers if layer.get("collapsed")) if layers else None,
        "experts_in_use_test": [layer.get("experts_in_use") for layer in layers],
        # how alike two tasks' routes are (1: every task takes the same experts), the mean over task pairs
        "mean_pathway_cosine": round(statistics.fmean(pairs), 4) if pairs else None,
        "trainable": metrics.get("trainable_params"),
        "head_params": (metrics.get("parameters") or {}).get("head"),
        "train_seconds": (metrics.get("timing") or {}).get("train_seconds"),
        "precision": (metrics.get("precision") or {}).get("computed_in"),
    }


def shown(task: str) -> str:
    """A task as the table's run column names it: a mixture's tasks are listed under the table, not in each cell."""
    parts = task.split(",")
    return f"{len(parts)}-task mixture" if len(parts) > 2 else task


def load(path: Path) -> dict[str, Any]:
    """A run folder's record, or a record written before (``--records``, or an earlier study's ``RUN.json``)."""
    if path.is_dir():
        return record(path)
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"{path}: not a record this script wrote ({e}); narrow the glob")
    if not isinstance(saved, dict) or not {"seed", "test", "best_validation"} <= saved.keys():
        fail(f"{path}: not a record this script wrote (no seed, test or best_validation); "
             "narrow the glob")
    saved.setdefault("collapsed_layers_test", saved.get("collapsed_layers"))
    saved.setdefault("head_params", None)
    saved.setdefault("task", None)  # records written before the task was recorded: one task per table
    return saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, metavar="LABEL=GLOB",
                    help="a setting's run folders (one per task and seed); the first label is the reference; "
                         "give a label again to add another glob to it")
    ap.add_argument("--records", type=Path, help="write each run's record here as RUN.json")
    ap.add_argument("--pick", action="append", default=[], metavar="LABEL",
                    help="this variant's runs of one (task, seed) are candidates: the best validation stands for it")
    args = ap.parse_args()
    variants: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    readable = labelled_paths(args.variant, "--variant", "finished run folder (metrics.json) or record (.json)",
                              keep=lambda path: path.suffix == ".json" and path.is_file()
                              or (path / "metrics.json").exists())
    for label in args.pick:
        if label not in readable:
            fail(f"--pick {label}: no --variant of that label (labels: {', '.join(readable)})")
    everything: list[dict[str, Any]] = []
    cost: dict[tuple[str, tuple[str, int]], float] = {}  # a picked variant's time is every candidate's
    for label, paths in readable.items():
        variants[label] = {}
        for r in map(load, paths):
            everything.append(r)
            key = (r["task"] or "", r["seed"])
            cost[label, key] = cost.get((label, key), 0.0) + (r.get("train_seconds") or 0)
            if key not in variants[label]:
                variants[label][key] = r
            elif label in args.pick:
                if r["best_validation"] > variants[label][key]["best_validation"]:
                    variants[label][key] = r
            else:  # a glob that caught another method's folder would pair the wrong runs
                fail(f"--variant {label} matches two runs of task {key[0] or '?'} seed {key[1]} "
                     f"({variants[label][key]['run']}, {r['run']}); narrow its glob, or --pick {label} to "
                     f"choose among them on validation")
    if args.records:  # only once every variant was read: a refused table writes nothing
        args.records.mkdir(parents=True, exist_ok=True)
        for r in (r for r in everything if r.get("run") is not None):
            (args.records / f"{r['run']}.json").write_text(json.dumps(r, indent=1) + "\n")
    reference_label, reference = next(iter(variants.items()))
    print("| variant | runs (task seed) | test per run | test mean ± std | best val mean ± std | test - "
          f"{reference_label} (p) | collapsed layers (test) | head params | train s/run |")
    print("|---|---|---|---:|---:|---|---|---:|---:|")
    for label, runs in variants.items():
        seeds = sorted(runs)
        tests = [runs[s]["test"] for s in seeds]
        vals = [runs[s]["best_validation"] for s in seeds]
        shared = [s for s in seeds if s in reference]
        if label == reference_label or len(shared) < 2:
            diff = "-"
        else:
            t = paired_test([runs[s]["test"] for s in shared], [reference[s]["test"] for s in shared])
            diff = paired_text(t)
        collapsed = ", ".join(_or_dash(runs[s]["collapsed_layers_test"]) for s in seeds)
        heads = {runs[s]["head_params"] for s in seeds}
        seconds = statistics.fmean(cost[label, s] for s in seeds)
        names = ", ".join(f"{shown(task)} {seed}".strip() for task, seed in seeds)
        print(f"| {label} | {names} | {', '.join(f'{x:.2f}' for x in tests)} | {mean_std(tests)} "
              f"| {mean_std(vals)} | {diff} | {collapsed} | {', '.join(f'{h:,}' for h in heads if h)} | {seconds:,.0f} |")
    on_validation = sorted({r["task"] for r in everything if r.get("scored_on", "test") != "test"})
    if on_validation:
        print(f"\nNo test split ({'; '.join(t.replace(',', ', ') for t in on_validation)}): a run's 'test' is its "
              "validation score at the checkpoint chosen on that validation.")
    for label in dict.fromkeys(args.pick):  # a label picked twice is listed once
        runs = variants[label]
        print(f"\n{label}, picked on validation (its train s/run counts every candidate): " + ", ".join(
            f"{runs[key]['run']} ({runs[key]['best_validation']:.2f})" for key in sorted(runs)))


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
