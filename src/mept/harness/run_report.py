"""What a run leaves behind: ``labels.json``, per-evaluation log lines, ``metrics.json`` and the
seed aggregate.

The last step of the harness: it reads what the loop measured and writes it; nothing here trains.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mept.files.atomic_file import atomic_write
from mept.files.run_names import IDENTITY
from mept.harness.evaluate import evaluate, metric_key, score
from mept.harness.precision import precision_record
from mept.harness.prepare_run import Prepared
from mept.harness.run_folder import RunFolder
from mept.harness.train_state import TrainState
from mept.model.adapter import AdapterModel
from mept.version import __version__


def save_label_space(out: Path, p: Prepared) -> None:
    """Write ``labels.json``: the output form, task specs and head classes, so that ``mept eval --file`` and
    ``mept predict`` rebuild the trained model from the run folder alone (no training data needed)."""
    labels = p.encoder.labels
    train_tasks = sorted({f.example.task for f in p.train}, key=list(p.specs).index)
    info = {
        "mept_version": __version__,  # the file outlives the code: say which code wrote it
        "identity": IDENTITY,  # this run has its identity.json: a reader refuses the run without it
        "format": p.encoder.form,
        "num_labels": len(labels.words) if labels else (max(len(p.specs[t].verbalizer) for t in train_tasks)
                                                         if p.encoder.form == "image_cls" else None),
        "words": labels.words if labels else None,
        "task_words": labels.task_words if labels else None,
        "train_tasks": train_tasks,
        "eval_tasks": list(p.eval_sets),
        "tasks": {name: {"verbalizer": list(s.verbalizer), "metric": s.metric, "kind": s.kind,
                         "description": s.description} for name, s in p.specs.items()},
    }
    atomic_write(RunFolder(out).labels, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2)))


def eval_line(step: int, total: int, loss: float, score: float, state: TrainState) -> str:
    """One log line per evaluation: readable in a terminal and in a log file alike."""
    width = len(str(total))
    line = (f"step {step:>{width}}/{total}  loss {loss:.4f}  validation {score:6.2f}  "
            f"best {state.best_score:6.2f} (step {state.best_step})  {state.examples_per_second:.1f} ex/s")
    last = state.history[-1] if state.history else {}
    if "routing_entropy" in last:  # routed methods: is the router still routing?
        line += f"  routing entropy {max(0.0, last['routing_entropy']):.2f}, collapsed layers {last['collapsed_layers']}"
    return line


def finish(model: AdapterModel, p: Prepared, state: TrainState, out: Path, wall_origin: float | None = None) -> dict[str, Any]:
    """Reload the best checkpoint, score test (validation was scored when it was best), write metrics.json.

    ``wall_origin``: the ``time.perf_counter()`` the run started at (shifted back by earlier sessions' time on resume).
    """
    cfg = p.config
    model.load_adapter(RunFolder(out).best)
    validation = state.best_result
    test = evaluate(model, p.encoder, p.specs, p.test_sets, cfg.eval_batch_size, cfg.eval_mode,
                    metric=cfg.metric, precision=cfg.mixed_precision_ran
                    ) if p.test_sets and cfg.score_test else None  # a search's runs: validation only
    report = model.parameter_report()
    train_seconds = state.train_seconds
    metrics = {
        "method": cfg.method,
        "model": cfg.model,
        "format": p.encoder.form,
        "seed": cfg.seed,
        "lr": cfg.lr_for(model.spec.hidden_size, model.spec.text_decoder),
        "metric": cfg.metric,  # what "average" averages and the best checkpoint was chosen by
        "tasks": validation["tasks"],
        "average": validation["average"],
        "averages": validation.get("averages"),  # accuracy, macro-F1, weighted F1 over tasks, whatever selected
        "majority": majority_baseline(p),
        "test": test,
        "routing": validation.get("routing"),
        "best_step": state.best_step,
        "steps": state.step,
        "history": state.history,
        "trainable_params": report["trainable"],
        "trainable_percent": report["trainable_percent"],
        "activated_prompt_tokens": report["activated_prompt_tokens"],
        "parameters": report,
        "truncated": p.truncated,
        "train_examples": len(p.train),
        "precision": precision_record(cfg.mixed_precision, cfg.mixed_precision_ran),
        "prompt_init": model.prompt_init,  # None for a baseline (no prompts)
        "lr_rule": cfg.lr_rule(model.spec.hidden_size, model.spec.text_decoder),
        "determinism": determinism(),
        "timing": {  # measurements: the only part of metrics.json that differs between identical runs
            "train_seconds": round(train_seconds, 3),  # forward/backward/update only
            "train_examples_per_second": round(state.examples_per_second, 2),
            "examples_seen": state.examples_seen,
            "eval_seconds": round(state.eval_seconds or 0.0, 3),  # one pass over validation
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "train_seconds_at_eval": state.eval_train_seconds,  # [step, train seconds] per evaluation
        },
    }
    if wall_origin is not None:  # everything since train() began: loading, tokenising, training, evaluating, saving
        metrics["timing"]["wall_seconds"] = round(time.perf_counter() - wall_origin, 3)
    RunFolder(out).write_metrics(metrics)
    RunFolder(out).incomplete.unlink(missing_ok=True)
    return metrics


def determinism() -> dict[str, Any]:
    """What a rerun must match to reproduce this run's numbers bit for bit.

    On CPU the same seed, thread count and library versions give identical metrics across
    processes (``tests/test_determinism.py``); a different thread count changes the order of
    floating-point reductions, so results agree only to rounding, and GPUs add their own
    non-deterministic kernels unless ``deterministic_algorithms`` is on.
    """
    import platform

    import transformers

    return {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})",
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "versions": {"mept": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
    }


def majority_baseline(p: Prepared) -> dict[str, float]:
    """Score of always predicting the most frequent training label, per classification task,
    in the run's selection metric (the majority's macro-F1 is far below its accuracy)."""
    from collections import Counter

    out = {}
    for task, features in p.eval_sets.items():
        if p.specs[task].kind == "generation":
            continue
        train_labels = [f.example.label for f in p.train if f.example.task == task]
        pool = train_labels or [f.example.label for f in features]
        label = Counter(pool).most_common(1)[0][0]
        metric = p.config.metric or "task"
        out[task] = score(p.specs[task], features, [label] * len(features), class_scores=metric != "task")[metric_key(metric)]
    return out


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def routing_summary(health: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few routing-health numbers worth keeping per seed."""
    if not health:
        return None
    keys = ("collapsed_layers", "layers_with_3_experts", "mean_entropy", "max_pathway_cosine")
    return {k: health[k] for k in keys}


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def mean_over_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation of per-task scores and of the average, over seeds' results.

    ``results`` are ``metrics.json``-shaped (training runs) or ``evaluate`` results (``mept eval``).
    """
    key = metric_key(results[0].get("metric") or "task")  # per task the metric "average" averages
    return {"tasks": {t: mean_std([r["tasks"][t][key] for r in results]) for t in results[0]["tasks"]},
            "average": mean_std([r["average"] for r in results])}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds, per task and for the average (the MEPT paper averages 3 runs,
    Table 1's caption)."""
    tasks = runs[0]["tasks"]
    return {
        "method": runs[0]["method"],
        "model": runs[0]["model"],
        **mean_over_seeds(runs),
        "trainable_percent": runs[0]["trainable_percent"],
        "activated_prompt_tokens": runs[0]["activated_prompt_tokens"],
        "parameters": runs[0].get("parameters"),  # stored and activated per example: the same for every seed
        "precision": runs[0].get("precision"),  # resolved once for the whole grid (train.run)
        "runs": [{"seed": r["seed"], "average": r["average"], "tasks": {t: r["tasks"][t]["score"] for t in tasks},
                  "routing": routing_summary(r.get("routing"))} for r in runs],
    }
