"""Scoring a trained run folder: ``mept eval`` (a split, or a labelled file) and ``mept predict``.

The step after :mod:`mept.harness.run_folder` has rebuilt the run (:func:`~mept.harness.run_folder.load_trained`):
read a split or a file the way the run's own data was read, score it with :mod:`mept.harness.evaluate`,
print the scores and write ``eval_*.json`` beside the checkpoint (of a multi-seed run: every
seed, then their mean and std). :func:`analysis_sets` picks what ``mept analyze`` routes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mept.data.jsonl import read_table
from mept.data.metrics import format_class_report
from mept.errors import MeptError, warn
from mept.files.atomic_file import atomic_write
from mept.files.file_limits import read_json_object
from mept.files.ownership import OutputKind, claim_output
from mept.files.safe_names import file_component
from mept.harness.evaluate import evaluate, predict_details
from mept.harness.predictions import check_clashes, check_output, write_predictions
from mept.harness.prepare_run import warn_truncation
from mept.harness.report_print import print_scores
from mept.harness.run_folder import RunFolder, load_trained, pick_task, read_task_file, trained_folders
from mept.harness.run_report import mean_over_seeds


def eval_run(run_dir: str | Path, *, split: str = "validation", file: str | None = None,
             tasks: list[str] | None = None, data_dir: str | None = None, max_eval_examples: int | None = None,
             eval_mode: str | None = None, eval_batch_size: int | None = None,
             fields: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """``mept eval RUN``: score the best checkpoint; of a multi-seed run every seed, with mean and std over them.

    ``file``: a labelled CSV/JSONL file read with the run's ``fields`` (each None: the run's own),
    else ``split`` of the run's tasks or of ``tasks``.
    """
    folders = trained_folders(run_dir)
    results = []
    for folder in folders:
        if len(folders) > 1:
            print(f"{folder.name}:")
        if file:
            results.append(eval_file(folder, file, tasks=tasks, eval_mode=eval_mode,
                                     eval_batch_size=eval_batch_size, fields=fields))
        else:
            results.append(eval_split(folder, split, tasks=tasks, data_dir=data_dir,
                                      max_eval_examples=max_eval_examples, eval_mode=eval_mode))
    if len(folders) > 1:
        summary = seed_summary(results)
        print_scores(summary, title=f"mean over {len(folders)} seeds:")
        save_eval(summary, Path(run_dir) / results[0]["file_name"])
    return results


def eval_split(folder: Path, split: str, *, tasks: list[str] | None = None, data_dir: str | None = None,
               max_eval_examples: int | None = None, eval_mode: str | None = None) -> dict[str, Any]:
    """A split of the run's tasks (or ``tasks``, others), written beside the checkpoint."""
    p = load_trained(folder, data=True, tasks=tasks, data_dir=data_dir,
                     max_eval_examples=max_eval_examples, eval_mode=eval_mode)
    sets = p.eval_sets if split == "validation" else p.test_sets
    if not sets:
        raise MeptError(f"split {split!r} is not available for these tasks")
    result = evaluate(p.model, p.encoder, p.specs, sets, p.config.eval_batch_size, p.config.eval_mode,
                      metric=p.config.metric, precision=p.config.mixed_precision_ran)
    result.update({"split": split, "seed": p.config.seed, "run": str(folder)})
    print_scores(result, title=f"{split} scores (best checkpoint):")
    return write_eval(result, RunFolder(folder).eval_result(f"{split}_{file_component('-'.join(sets))}"))


def _is_eval_result(path: Path) -> bool:
    try:
        data = json.loads(path.read_text()) if path.stat().st_size < (16 << 20) else None
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "split" in data and "average" in data


# What `mept eval` writes inside a run folder, for the one ownership check (mept.files.ownership.claim_output):
# its own eval_*.json, refreshed on each evaluation; never a link, a folder or a file of another shape.
EVAL_RESULT = OutputKind("a mept eval result", owns_file=_is_eval_result)


def write_eval(result: dict[str, Any], dest: Path) -> dict[str, Any]:
    save_eval(result, dest)
    return {**result, "file_name": dest.name}


def save_eval(result: dict[str, Any], dest: Path) -> None:
    """Write an evaluation beside the checkpoint (only over an earlier one of ours); a run folder that
    cannot be written keeps the printed scores and says the file was not saved (exit status 0)."""
    def not_saved(why: str) -> None:
        warn(f"could not write {dest} ({why}): the scores above are printed but not saved")

    if not os.access(dest.parent, os.W_OK | os.X_OK):
        return not_saved("the run folder is read-only")
    claim_output(dest, EVAL_RESULT, overwrite=True, flag="eval result file")
    try:
        atomic_write(dest, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
    except OSError as exc:
        return not_saved(exc.strerror or str(exc))
    print(f"wrote {dest}")


def seed_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over the seeds' evaluations, naming each seed's file."""
    return {
        "split": results[0]["split"],
        **mean_over_seeds(results),
        "seeds": [{"seed": r["seed"], "average": r["average"], "file": str(Path(r["run"]) / r["file_name"])}
                  for r in results],
    }


def featurize_file(p: Any, spec: Any, path: str, labelled: bool, fields: dict[str, str | None] | None = None):
    """Features of a new file read as the run's own data (``fields`` override; None: the run's), truncation warned."""
    examples = read_task_file(p, spec, path, labelled=labelled, **(fields or {}))
    features, cut = p.encoder.featurize(examples)
    warn_truncation({Path(path).name: cut}, {Path(path).name: len(features)}, p.config.max_length,
                    p.config.max_length_counts_slots)
    return features, cut


def eval_file(folder: Path, file: str, *, tasks: list[str] | None = None, eval_mode: str | None = None,
              eval_batch_size: int | None = None, fields: dict[str, str | None] | None = None) -> dict[str, Any]:
    """``mept eval RUN --file F``: score a labelled file with the task's official metric."""
    if tasks and len(tasks) > 1:
        raise MeptError("--file scores one task; give at most one --task")
    p = load_trained(folder, eval_mode=eval_mode, eval_batch_size=eval_batch_size)
    spec = pick_task(p, tasks[0] if tasks else None)
    features, cut = featurize_file(p, spec, file, True, fields)
    result = evaluate(p.model, p.encoder, {spec.name: spec}, {spec.name: features},
                      p.config.eval_batch_size, p.config.eval_mode, metric=p.config.metric, per_class=True,
                      precision=p.config.mixed_precision_ran)
    result.update({"split": "file", "file": str(Path(file).resolve()), "examples": len(features),
                   "truncated": {spec.name: cut}, "seed": p.config.seed, "run": str(folder)})
    print_scores(result, title=f"scores on {file} ({len(features)} examples, best checkpoint):")
    report = result.get("reports", {}).get(spec.name)
    if report:
        print(format_class_report(report))
    return write_eval(result, eval_file_path(folder, Path(file)))


def eval_file_path(folder: Path, scored: Path) -> Path:
    """``eval_file_STEM.json``, unless that name holds the scores of another file with the same stem
    (``a/test.csv`` vs ``b/test.csv``): then a short hash of the full path keeps both."""
    stem = file_component(scored.stem, fallback="file")
    dest = RunFolder(folder).eval_result(f"file_{stem}")
    try:
        previous = json.loads(dest.read_text()).get("file")
    except (OSError, ValueError, AttributeError):
        return dest
    resolved = str(scored.resolve())
    if previous in (None, resolved):
        return dest
    return RunFolder(folder).eval_result(f"file_{stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}")


def predict_file(run_dir: str | Path, file: str, output: str | Path, *, task: str | None = None,
                 eval_mode: str | None = None, eval_batch_size: int | None = None,
                 fields: dict[str, str | None] | None = None, overwrite: bool = False,
                 escape_formulas: bool = True) -> None:
    """``mept predict RUN --file F --output P``: label each row; keep its fields, add the answer.

    ``overwrite``: replace an earlier predictions file at ``output`` (never another file);
    ``escape_formulas``: in a CSV, a cell a spreadsheet would run as a formula gets a leading ``'``.
    """
    out = Path(output)
    check_output(out, {"the input file": Path(file), **run_data_files(run_dir)}, overwrite)  # before the model loads
    table = read_table(file)
    check_clashes(table)
    rows = [r.data for r in table]
    p = load_trained(run_dir, eval_mode=eval_mode, eval_batch_size=eval_batch_size)
    spec = pick_task(p, task)
    features, _ = featurize_file(p, spec, file, False, fields)
    preds = predict_details(p.model, p.encoder, spec, features, p.config.eval_batch_size, p.config.eval_mode,
                            precision=p.config.mixed_precision_ran)
    layers = p.model.routed_layers
    write_predictions(out, rows, preds, spec, layers, escape_formulas)
    print(f"wrote {len(preds)} predictions to {out}")


def run_data_files(run_dir: str | Path) -> dict[str, Path]:
    """The data files a run was trained and scored on (its ``run_config.json``), by role: never a place for
    predictions."""
    path = RunFolder(Path(run_dir)).config
    saved = read_json_object(path) if path.is_file() else {}
    roles = {"train_file": "the run's training file", "val_file": "the run's validation file",
             "test_file": "the run's test file"}
    return {role: Path(saved[k]) for k, role in roles.items() if isinstance(saved.get(k), str)}


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
    spec = pick_task(p, tasks[0] if tasks else None)
    features, _ = featurize_file(p, spec, split, True)
    return {spec.name: features}
