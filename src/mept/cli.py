"""``mept`` command line: train, eval, predict, analyze, and listings.

Subcommands mirror the package: ``train`` -> :mod:`mept.train`, ``eval`` and
``predict`` -> :mod:`mept.evaluate` (on a run folder read back by
:mod:`mept.run_folder`), ``analyze`` -> :mod:`mept.analysis`. Every user error
is one line on stderr (``error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from mept.data.metrics import SELECTION_METRICS
from mept.errors import MeptError, MeptWarning
from mept.task_types import FORMATS

_default_showwarning = warnings.showwarning

TRAIN_FLAGS: dict[str, dict[str, Any]] = {
    "--method": {"help": "prompt method or baseline: {methods}"},  # filled from the registry in build_parser
    "--model": {"help": "hub id, local path, or offline alias: minilm, smollm2"},
    "--task": {"dest": "tasks", "nargs": "+", "help": "task(s) or suites: bb-diverse (default, offline), bb-superglue / all (offline SuperGLUE families), superglue (the 7 SuperGLUE tasks, hub or --data-dir)"},
    "--tasks": {"dest": "tasks", "nargs": "+", "help": "same as --task (several tasks = mixture training)"},
    "--eval-tasks": {"nargs": "+", "help": "cross-task: evaluate on these instead of the training tasks"},
    "--dataset": {"dest": "tasks", "nargs": "+", "help": "same as --task (image sets: bb-cifar10, fashion-mnist)"},
    "--format": {"help": ", ".join(FORMATS)},
    "--source": {"help": "auto, jsonl, hub"},
    "--data-dir": {"help": "local SuperGLUE release folder (train.jsonl / val.jsonl per task)"},
    "--train-file": {"help": "your own CSV/JSONL training data"},
    "--val-file": {"help": "your own CSV/JSONL validation data"},
    "--test-file": {"help": "your own labelled CSV/JSONL test data, scored at the end with the best checkpoint"},
    "--task-name": {"help": "name of your file's task (default: the training file's name)"},
    "--text-field": {}, "--text-pair-field": {}, "--label-field": {},
    "--template": {"help": "text around your file's fields, e.g. 'review: {text}' (field names only; {doc.body} reads a nested field)"},
    "--verbalizer": {"nargs": "+", "help": "label words in label-id order"},
    "--prompt-length": {"type": int, "help": "m, prompt tokens per layer"},
    "--experts": {"type": int, "help": "router experts N_r (mept, ptmoe) or prompts (smop)"},
    "--modules-to-save": {"nargs": "+", "help": "backbone modules trained and saved beside the prompts "
                          "(default: the task head, e.g. classifier)"},
    "--epochs": {"type": float}, "--max-steps": {"type": int},
    "--lr": {"type": float, "help": "learning rate of prompts and routers"},
    "--head-lr": {"type": float},
    "--lr-grid": {"nargs": "+", "help": "learning rates to try (best on validation wins), or 'paper'"},
    "--weight-decay": {"type": float}, "--warmup-ratio": {"type": float},
    "--batch-size": {"type": int, "help": "examples per optimizer step (over all processes)"},
    "--eval-batch-size": {"type": int},
    "--gradient-accumulation-steps": {"type": int, "help": "forward/backward passes per batch: same result, less memory"},
    "--max-grad-norm": {"type": float, "help": "clip the gradient norm to this before each step (default: no clipping)"},
    "--max-length": {"type": int, "help": "text tokens per input (default 384), the same for every method (longer "
                     "texts are truncated); prompt slots come on top and must fit the model's positions with the text"},
    "--max-train-examples": {"type": int, "help": "per task"}, "--max-eval-examples": {"type": int, "help": "per task"},
    "--eval-every": {"type": int}, "--save-every": {"type": int},
    "--seed": {"type": int}, "--seeds": {"type": int, "nargs": "+", "help": "several runs: mean and std"},
    "--eval-mode": {"help": "rank (default) or generate, for text-to-text / causal classification"},
    "--metric": {"choices": SELECTION_METRICS, "help": "what picks the best checkpoint on validation: task "
                 "(each task's own metric; default for built-in tasks), accuracy (default for your own file), "
                 "macro_f1, weighted_f1; accuracy and macro-F1 are reported either way"},
    "--head-pooling": {"choices": ["mean", "native"], "help": "what a BERT-like classification head reads: mean "
                       "(default) of the final states over real tokens -- sentence encoders such as MiniLM are "
                       "trained for mean pooling, and their [CLS] pooler is not -- or native (the backbone's own "
                       "[CLS] pooler); recorded in run_config.json and used again by eval, predict, --resume"},
    "--mixed-precision": {"help": "no, fp16, bf16 (GPU)"},
    "--quantize": {"help": "8bit or 4bit backbone (bitsandbytes, GPU)"},
    "--output": {"help": "run folder (default runs/latest)"},
}
# ``mept compare`` passes these to every method's ``mept train`` unchanged (the shared budget and data reading)
COMPARE_FORWARDED = ("--model", "--max-length", "--max-steps", "--epochs", "--batch-size", "--eval-every",
                     "--max-train-examples", "--max-eval-examples", "--task-name", "--text-field", "--text-pair-field",
                     "--label-field", "--template", "--verbalizer", "--head-lr")
BOOL_FLAGS = {"--gradient-checkpointing": "gradient_checkpointing", "--overwrite": "overwrite",
              "--deterministic": "deterministic",
              "--paper": "paper"}
BOOL_HELP = {"--paper": "the MEPT paper's settings where it states them (no balance loss, top-1, one shared "
                        "expert, Xavier normal, 70 epochs, batch 32, max length 512, its lr grid); flags override"}


def _method_args(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise MeptError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mept", description="Mixture-of-Expert Prompt Tuning on frozen transformers")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train prompts (no arguments: MEPT mixture on the offline bb-diverse suite with MiniLM)")
    tr.add_argument("--config", help="YAML or JSON file of training settings (flags override it)")
    from mept.registry import all_method_names

    for flag, kw in TRAIN_FLAGS.items():
        help_text = kw.get("help", "").replace("{methods}", ", ".join(all_method_names()))
        tr.add_argument(flag, default=None, **{**kw, **({"help": help_text} if "help" in kw else {})})
    for flag, dest in BOOL_FLAGS.items():
        tr.add_argument(flag, dest=dest, action="store_true", default=None, help=BOOL_HELP.get(flag))
    tr.add_argument("--set", dest="method_args", nargs="+", metavar="KEY=VALUE",
                    help="any method setting, e.g. --set routing=gumbel shared=off layers=1-6")
    tr.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    tr.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("eval", help="evaluate a trained run (its best checkpoint), optionally on other tasks")
    ev.add_argument("run_dir")
    ev.add_argument("--task", "--tasks", dest="tasks", nargs="+", help="tasks to evaluate (default: the run's)")
    ev.add_argument("--split", default="validation", choices=["validation", "test"])
    ev.add_argument("--file", help="a labelled CSV/JSONL file to score (read like the run's training file)")
    ev.add_argument("--data-dir")
    ev.add_argument("--max-eval-examples", type=int)
    ev.add_argument("--eval-mode", choices=["rank", "generate"])
    _file_flags(ev)

    pd = sub.add_parser("predict", help="label new (unlabelled) data with a trained run")
    pd.add_argument("run_dir")
    pd.add_argument("--file", required=True, help="CSV/JSONL rows to label (a label column, if any, is ignored)")
    pd.add_argument("--output", required=True, help="predictions file: .csv or .jsonl")
    pd.add_argument("--task", help="which of the run's tasks the rows belong to (default: the run's only task)")
    pd.add_argument("--eval-mode", choices=["rank", "generate"])
    _file_flags(pd)

    an = sub.add_parser("analyze", help="routing pathways, expert utilisation, t-SNE of a trained routed run")
    an.add_argument("run_dir")
    an.add_argument("--tasks", nargs="+", help="tasks to analyse (default: the run's)")
    an.add_argument("--out", help="output folder (default RUN_DIR/analysis)")
    an.add_argument("--max-per-task", type=int, default=200)
    an.add_argument("--no-baseline", action="store_true", help="skip the frozen-backbone t-SNE")
    an.add_argument("--by", choices=["label"], help="also break routing down by gold class")
    an.add_argument("--split", default="validation",
                    help="validation (default), test, or a labelled CSV/JSONL file; the paper's figures use the "
                         "SuperGLUE dev set, which is our test split of the SuperGLUE tasks")
    an.add_argument("--feature-model", help="also a t-SNE of the raw inputs through this model (paper Fig. 4a: "
                                            "BERT), e.g. mpnet or a hub id")

    cp = sub.add_parser("compare", help="MEPT against prompt tuning, P-Tuning v2, LoRA, full fine-tuning and a linear "
                        "probe on your files: lr per method chosen on validation, seeds, one table")
    cp.add_argument("--train-file", required=True)
    cp.add_argument("--val-file", help="default: a split of the training file, as for mept train")
    cp.add_argument("--test-file", required=True)
    cp.add_argument("--methods", nargs="+", default=None, help="default: mept prompt_tuning ptuning_v2 lora full probe")
    cp.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    cp.add_argument("--output", default="runs/compare", help="folder for the runs and compare.json/.csv/.png")
    cp.add_argument("--no-lr-grid", action="store_true", help="each method's default lr instead of its grid (cheaper)")
    for flag in COMPARE_FORWARDED:
        cp.add_argument(flag, default=None, **{k: v for k, v in TRAIN_FLAGS[flag].items() if k != "dest"})

    sub.add_parser("methods", help="list prompt methods and baselines, with their trainable parameters on MiniLM")
    sub.add_parser("tasks", help="list tasks")
    pr = sub.add_parser("params", help="print the parameter report of a method on a backbone")
    pr.add_argument("--method", default="mept", help=f"prompt method or baseline: {', '.join(all_method_names())}")
    pr.add_argument("--model", default="minilm")
    pr.add_argument("--set", dest="method_args", nargs="+", metavar="KEY=VALUE")
    pr.add_argument("--num-labels", type=int, help="count a classification head of this many classes too "
                    "(a run adds it once its labels are known)")
    return parser


def _file_flags(parser: argparse.ArgumentParser) -> None:
    """How to read a new file; each defaults to what the run was trained with."""
    for flag in ("--text-field", "--text-pair-field", "--label-field", "--template"):
        parser.add_argument(flag, help="default: the run's own setting")
    parser.add_argument("--batch-size", type=int, dest="eval_batch_size")


def train_config_from_args(args: argparse.Namespace):
    from mept.train_config import TrainConfig, paper_lr_grid

    values = {}
    for flag, kw in {**TRAIN_FLAGS, **{f: {"dest": d} for f, d in BOOL_FLAGS.items()}}.items():
        dest = kw.get("dest", flag.lstrip("-").replace("-", "_"))
        if getattr(args, dest, None) is not None:
            values[dest] = getattr(args, dest)
    if args.method_args:
        values["method_args"] = _method_args(args.method_args)
    if args.no_progress:
        values["progress"] = False
    grid = values.get("lr_grid")
    if grid is not None:
        if grid == ["paper"]:
            values["lr_grid"] = paper_lr_grid(values.get("method", "mept"))
        else:
            try:
                values["lr_grid"] = [float(x) for x in grid]
            except ValueError:
                raise MeptError(f"--lr-grid takes numbers or 'paper', got {' '.join(grid)}") from None
    if args.resume and not args.config:
        saved = resume_settings(Path(values.get("output", "runs/latest")), values)
        if saved is not None:
            return TrainConfig.from_dict(saved, origin="run_config.json")
    if args.config:
        return TrainConfig.from_file(args.config, **values)
    return TrainConfig.from_dict(values, origin="command line")


def resume_settings(out: Path, given: dict[str, Any]) -> dict[str, Any] | None:
    """The saved settings of the run in ``out``, to continue it *there* (it may have been moved or copied).

    Flags repeated with ``--resume`` must agree with the saved run: a different value would
    silently not apply, so it is refused, naming each flag with both values.
    """
    from mept.run_dir import read_json_object, settings_source
    from mept.train import RUN_CONFIG

    path = settings_source(out) / RUN_CONFIG  # the old run an interrupted --overwrite moved aside, if any
    if not path.exists():
        return None  # train() reports "holds no run to resume"
    from mept.train_config import migrate_run_config

    saved = migrate_run_config(read_json_object(path))
    ignored = {"output", "progress", "overwrite"}
    differ = [f"{k} (saved {saved.get(k)!r}, given {v!r})" for k, v in given.items()
              if k not in ignored and k in saved and saved[k] != v]
    if differ:
        raise MeptError(f"--resume continues the run in {out} with its saved settings, but these flags differ: "
                        f"{'; '.join(differ)}; drop them, or start a new run with --overwrite")
    return {**saved, "output": str(out), **{k: v for k, v in given.items() if k == "progress"}}


def cmd_train(args: argparse.Namespace) -> None:
    from mept.train import run

    cfg = train_config_from_args(args)
    metrics = run(cfg, resume=args.resume)
    print_summary(metrics)
    print(f"wrote {Path(cfg.output) / 'metrics.json'}")


def print_summary(metrics: dict[str, Any]) -> None:
    """What a person needs after training: best validation scores and their step, test, size, time."""
    best = f" (best checkpoint, step {metrics['best_step']} of {metrics['steps']})" if "best_step" in metrics else ""
    print_scores({k: metrics[k] for k in ("tasks", "average", "majority", "metric", "averages") if k in metrics},
                 title=f"validation scores{best}:")
    test = metrics.get("test")
    if test:
        print_scores({k: test[k] for k in ("tasks", "average", "metric", "averages") if k in test},
                     title="test scores (best checkpoint):")
    print_footer(metrics)
    timing = metrics.get("timing")
    if timing and "wall_seconds" in timing:
        print(f"time: {timing['wall_seconds']:.1f} s wall, {timing['train_seconds']:.1f} s training "
              f"({timing['train_examples_per_second']:.1f} examples/s)")

def print_scores(metrics: dict[str, Any], title: str = "validation scores:") -> None:
    """Per task the selection metric's score (and majority baseline), then their average.

    Runs selected by a class metric (own data: accuracy by default, or ``--metric``) also show
    accuracy and macro-F1 beside it and name the metric; built-in suites print as they always did.
    """
    from mept.evaluate import metric_key

    metric = metrics.get("metric") or "task"
    key, extras = metric_key(metric), metric != "task"
    rows = []
    for task, result in metrics["tasks"].items():
        score = result.get(key, result.get("score", result.get("mean")))
        extra = f" ± {result['std']:.2f}" if "std" in result else ""
        baseline = metrics.get("majority", {}).get(task)
        rows.append(f"  {task:<16} {score:6.2f}{extra}" + (f"   (majority {baseline:.2f})" if baseline is not None else "")
                    + (_class_columns(result) if extras else ""))
    avg = metrics["average"]
    avg_text = f"{avg['mean']:.2f} ± {avg['std']:.2f}" if isinstance(avg, dict) else f"{avg:.2f}"
    print(title)
    print("\n".join(rows))
    print(f"  {'average':<16} {avg_text}" + (_class_columns(metrics.get("averages") or {}) if extras else ""))
    if extras:
        print(f"  (first column: {metric}, the metric that picks the best checkpoint)")
    print_footer(metrics)


def _class_columns(result: dict[str, Any]) -> str:
    """Accuracy and macro-F1 beside the selection metric, where the result has them."""
    if "accuracy" not in result or "macro_f1" not in result:
        return ""
    return f"   accuracy {result['accuracy']:6.2f}  macro-F1 {result['macro_f1']:6.2f}"


def print_footer(metrics: dict[str, Any]) -> None:
    """Truncation and trainable-parameter lines, where ``metrics`` has them."""
    cut = {k: v for k, v in metrics.get("truncated", {}).items() if v}
    if cut:
        print("truncated to --max-length: " + ", ".join(f"{k} {v}" for k, v in cut.items()))
    if metrics.get("routing"):
        from mept.analysis.health import format_health

        print(format_health(metrics["routing"], examples=_routed_examples(metrics)))
    if "trainable_percent" in metrics:
        report = metrics.get("parameters") or {}
        stored = metrics.get("trainable_params", report.get("trainable"))
        count = f"{stored:,} parameters = " if stored is not None else ""
        print(f"trainable: {count}{metrics['trainable_percent']:.3f}% of the backbone, "
              f"activated prompt tokens: {metrics['activated_prompt_tokens']}")
        if "activated" in report:  # what one example uses: the count the paper's "Para" matches for MEPT
            print(f"activated per example: {report['activated']:,} parameters = {report['activated_percent']:.3f}% "
                  f"of the backbone (prompts {report['activated_prompt']:,})")


def _routed_examples(metrics: dict[str, Any]) -> str:
    """What the routing summary was measured on: a split, or the file ``mept eval --file`` scored."""
    if metrics.get("file"):
        return f"examples of {Path(metrics['file']).name}"
    return f"{metrics.get('split', 'validation')} examples"


def load_run(run_dir: str | Path, **overrides: Any):
    """Rebuild a trained run's model (best checkpoint, checked against the run's settings) and data."""
    from mept.run_folder import read_config, trained_folders
    from mept.train import prepare

    folders = trained_folders(run_dir)
    if len(folders) > 1:
        raise MeptError(f"{run_dir} holds {len(folders)} seeds ({', '.join(p.name for p in folders)}); "
                        f"point at one, e.g. {folders[0]}")
    run = folders[0]
    eval_tasks = overrides.pop("tasks", None)
    cfg = replace(read_config(run), progress=False, **{k: v for k, v in overrides.items() if v is not None})
    prepared = prepare(cfg, eval_tasks=eval_tasks)
    from mept.identity import check_identity

    check_identity(run, prepared.model.backbone, None)  # labels are rebuilt from the data here, not read
    prepared.model.load_adapter(run / "best", check_config=True)
    return prepared


def cmd_eval(args: argparse.Namespace) -> None:
    """Score the best checkpoint; of a multi-seed run every seed, with mean and std over them."""
    from mept.run_folder import trained_folders

    folders = trained_folders(args.run_dir)
    results = []
    for folder in folders:
        if len(folders) > 1:
            print(f"{folder.name}:")
        results.append(eval_file(args, folder) if args.file else eval_split(args, folder))
    if len(folders) > 1:
        summary = seed_summary(results)
        print_scores(summary, title=f"mean over {len(folders)} seeds:")
        dest = Path(args.run_dir) / results[0]["file_name"]
        dest.write_text(json.dumps(summary, indent=2))
        print(f"wrote {dest}")


def eval_split(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """``mept eval RUN``: a split of the run's tasks (or ``--task`` others), written beside the checkpoint."""
    from mept.evaluate import evaluate

    p = load_run(folder, tasks=args.tasks, data_dir=args.data_dir,
                 max_eval_examples=args.max_eval_examples, eval_mode=args.eval_mode)
    sets = p.eval_sets if args.split == "validation" else p.test_sets
    if not sets:
        raise MeptError(f"split {args.split!r} is not available for these tasks")
    result = evaluate(p.model, p.encoder, p.specs, sets, p.config.eval_batch_size, p.config.eval_mode,
                      metric=p.config.metric)
    result.update({"split": args.split, "seed": p.config.seed, "run": str(folder)})
    print_scores(result, title=f"{args.split} scores (best checkpoint):")
    return _write_eval(result, folder, f"eval_{args.split}_{'-'.join(sets)}.json")


def _write_eval(result: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    (folder / name).write_text(json.dumps(result, indent=2))
    print(f"wrote {folder / name}")
    return {**result, "file_name": name}


def seed_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over the seeds' evaluations, naming each seed's file."""
    from mept.run_report import mean_over_seeds

    return {
        "split": results[0]["split"],
        **mean_over_seeds(results),
        "seeds": [{"seed": r["seed"], "average": r["average"], "file": str(Path(r["run"]) / r["file_name"])}
                  for r in results],
    }


def _file_fields(args: argparse.Namespace) -> dict[str, str | None]:
    return {k: getattr(args, k) for k in ("text_field", "text_pair_field", "label_field", "template")}


def _featurize_file(p: Any, spec: Any, path: str, labelled: bool, fields: dict[str, str | None]):
    from mept.run_folder import read_task_file
    from mept.train import warn_truncation

    examples = read_task_file(p, spec, path, labelled=labelled, **fields)
    features, cut = p.encoder.featurize(examples)
    warn_truncation({Path(path).name: cut}, {Path(path).name: len(features)}, p.config.max_length,
                    p.config.max_length_counts_slots)
    return features, cut


def eval_file(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """``mept eval RUN --file F``: score a labelled file with the task's official metric."""
    from mept.evaluate import evaluate
    from mept.run_folder import load_trained, pick_task

    if args.tasks and len(args.tasks) > 1:
        raise MeptError("--file scores one task; give at most one --task")
    p = load_trained(folder, eval_mode=args.eval_mode, eval_batch_size=args.eval_batch_size)
    spec = pick_task(p, args.tasks[0] if args.tasks else None)
    features, cut = _featurize_file(p, spec, args.file, True, _file_fields(args))
    result = evaluate(p.model, p.encoder, {spec.name: spec}, {spec.name: features},
                      p.config.eval_batch_size, p.config.eval_mode, metric=p.config.metric, per_class=True)
    result.update({"split": "file", "file": str(Path(args.file).resolve()), "examples": len(features),
                   "truncated": {spec.name: cut}, "seed": p.config.seed, "run": str(folder)})
    print_scores(result, title=f"scores on {args.file} ({len(features)} examples, best checkpoint):")
    report = result.get("reports", {}).get(spec.name)
    if report:
        from mept.data.metrics import format_class_report

        print(format_class_report(report))
    return _write_eval(result, folder, eval_file_name(folder, Path(args.file)))


def eval_file_name(folder: Path, scored: Path) -> str:
    """``eval_file_STEM.json``, unless that name holds the scores of another file with the same stem
    (``a/test.csv`` vs ``b/test.csv``): then a short hash of the full path keeps both."""
    import hashlib

    name = f"eval_file_{scored.stem}.json"
    try:
        previous = json.loads((folder / name).read_text()).get("file")
    except (OSError, ValueError, AttributeError):
        return name
    resolved = str(scored.resolve())
    if previous in (None, resolved):
        return name
    return f"eval_file_{scored.stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}.json"


def cmd_predict(args: argparse.Namespace) -> None:
    """``mept predict RUN --file F --output P``: label each row; keep its fields, add the answer."""
    from mept.data.jsonl import read_table
    from mept.evaluate import predict_details
    from mept.predictions import check_clashes, check_output, write_predictions

    out = Path(args.output)
    check_output(out, Path(args.file))  # before the model loads, not after the whole prediction
    table = read_table(args.file)
    check_clashes(table)
    rows = [r.data for r in table]
    from mept.run_folder import load_trained, pick_task

    p = load_trained(args.run_dir, eval_mode=args.eval_mode, eval_batch_size=args.eval_batch_size)
    spec = pick_task(p, args.task)
    features, _ = _featurize_file(p, spec, args.file, False, _file_fields(args))
    preds = predict_details(p.model, p.encoder, spec, features, p.config.eval_batch_size, p.config.eval_mode)
    layers = [i + 1 for i in p.model.method.layer_ids] if p.model.method.routed else []
    write_predictions(out, rows, preds, spec, layers)
    print(f"wrote {len(preds)} predictions to {out}")


def cmd_analyze(args: argparse.Namespace) -> None:
    from mept.analysis.collect import analyze_run
    from mept.run_dir import check_writable

    out = Path(args.out) if args.out else Path(args.run_dir) / "analysis"
    check_writable(out, flag="--out")
    p = load_run(args.run_dir, tasks=args.tasks)
    result = analyze_run(p, out, max_per_task=args.max_per_task, baseline=not args.no_baseline,
                         by_label=args.by == "label", sets=analysis_sets(p, args.split, args.tasks),
                         feature_model=args.feature_model)
    print(result["summary"])
    for name, path in result["files"].items():
        print(f"wrote {path}")


def analysis_sets(p: Any, split: str, tasks: list[str] | None) -> dict[str, Any]:
    """``mept analyze --split``: the run's validation or test features, or a labelled file's."""
    if split == "validation":
        return p.eval_sets
    if split == "test":
        if not p.test_sets:
            raise MeptError("split 'test' is not available for these tasks")
        return p.test_sets
    if not Path(split).is_file():
        raise MeptError(f"--split must be validation, test or a labelled CSV/JSONL file; {split!r} is none")
    from mept.run_folder import pick_task

    spec = pick_task(p, tasks[0] if tasks else None)
    features, _ = _featurize_file(p, spec, split, True, dict.fromkeys(("text_field", "text_pair_field",
                                                                      "label_field", "template")))
    return {spec.name: features}


def cmd_compare(args: argparse.Namespace) -> None:
    from mept.compare import DEFAULT_METHODS, CompareConfig, compare

    forwarded: list[str] = []
    for flag in COMPARE_FORWARDED:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            forwarded += [flag, *map(str, value if isinstance(value, list) else [value])]
    cfg = CompareConfig(train_file=args.train_file, val_file=args.val_file, test_file=args.test_file,
                        output=args.output, methods=args.methods or list(DEFAULT_METHODS), seeds=args.seeds,
                        train_args=forwarded, search_lr=not args.no_lr_grid)
    result = compare(cfg)
    print(f"\n{result['title']}\n")
    print(result["table"])
    for path in result["files"].values():
        print(f"wrote {path}")


def cmd_params(args: argparse.Namespace) -> None:
    import mept
    from mept.backbones import load_backbone

    if args.num_labels is not None and args.num_labels < 2:
        raise MeptError(f"--num-labels must be >= 2 (a classifier needs two classes), got {args.num_labels}")
    config = mept.make_config(args.method, **_method_args(args.method_args))
    if args.num_labels is None:
        backbone = load_backbone(args.model, "base")
    else:  # the head a `mept train` classification run trains beside the prompts
        backbone = load_backbone(args.model, "cls", num_labels=args.num_labels)
    print(json.dumps(mept.get_model(backbone.model, config).parameter_report(), indent=2))
    if args.num_labels is None:
        print("note: prompt method only; a classification run also trains its head (classes known from the "
              "labels): add --num-labels N to count it", file=sys.stderr)


def closed_pipe() -> int:
    """``mept params | head -2``: the reader left, which is not an error; end quietly as a killed writer would.

    stdout is pointed at /dev/null so the interpreter's final flush does not raise again, and
    the status is 141 (128 + SIGPIPE), what a shell reports for ``cat`` or ``yes`` in the same pipe.
    """
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests): nothing to redirect
        pass
    return 141


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)


def join_negative_numbers(argv: list[str]) -> list[str]:
    """``--lr -1e-2`` -> ``--lr=-1e-2``: argparse would take a token like ``-1e-2`` for a flag.

    The value then parses, and validation can say what is wrong with it (a negative rate).
    """
    out: list[str] = []
    for token in argv:
        if out and NEGATIVE_NUMBER.match(token) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """MeptWarnings are one ``warning: ...`` line on stderr; other libraries' warnings keep their form."""
    if issubclass(category, MeptWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    from mept.signals import terminate_as_interrupt

    args = build_parser().parse_args(join_negative_numbers(list(sys.argv[1:] if argv is None else argv)))
    with terminate_as_interrupt(), warnings.catch_warnings():  # SIGTERM unwinds like Ctrl-C
        warnings.simplefilter("always", MeptWarning)  # every doubtful input is reported, not only the first
        warnings.showwarning = _show_warning
        return _dispatch(args)


INTERRUPT_HINTS = {
    "train": "resume with `mept train --resume --output DIR`",
    "predict": "no predictions were written; run `mept predict` again",
    "eval": "nothing was written; run `mept eval` again",
    "analyze": "run `mept analyze` again",
}


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "train":
            cmd_train(args)
        elif args.command == "eval":
            cmd_eval(args)
        elif args.command == "predict":
            cmd_predict(args)
        elif args.command == "analyze":
            cmd_analyze(args)
        elif args.command == "compare":
            cmd_compare(args)
        elif args.command == "params":
            cmd_params(args)
        elif args.command == "methods":
            from mept.baselines.listing import print_methods

            print_methods()
        elif args.command == "tasks":
            from mept import data

            for name in data.task_names():
                spec = data.get_task(name)
                print(f"{name:<16} {spec.kind:<15} {spec.metric:<12} {' / '.join(spec.verbalizer)}")
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
    except MeptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return closed_pipe()
    except KeyboardInterrupt as exc:
        from mept.signals import Terminated

        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"{what}; {INTERRUPT_HINTS.get(args.command, 'nothing was changed')}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: name it, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; check the path, its permissions and free space", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of ours: one line for the user, the traceback on request
        if os.environ.get("MEPT_DEBUG"):
            raise
        if "No space left on device" in str(exc):  # a library's own error class for ENOSPC (safetensors)
            print(f"error: No space left on device while writing ({type(exc).__name__}); free space where "
                  f"--output points and rerun (--resume continues from the last checkpoint)", file=sys.stderr)
            return 2
        print(f"error: internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              f"rerun with MEPT_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
