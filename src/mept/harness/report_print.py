"""What the command line prints of a result: scores per task, their average, and the footer lines.

Reads the dicts that training (``metrics.json``) and evaluation (``eval_*.json``) write; computes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mept.core.routing_health import format_health
from mept.harness.evaluate import metric_key


def print_summary(metrics: dict[str, Any]) -> None:
    """What a person needs after training: what a search chose, best validation scores and their step, test,
    size, time."""
    print_search(metrics)
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
    precision = metrics.get("precision")
    if precision:
        print(f"precision: {precision['computed_in']} ({precision['why']})")
    init = metrics.get("prompt_init")
    if init and init["asked"] == "auto":  # say what "auto" meant on this backbone
        print(f"prompt init: {init['ran']} (auto: {'a text decoder' if init['ran'] == 'hidden_states' else 'not a text decoder'})")
    rule = metrics.get("lr_rule")
    if rule:  # the default lr followed the backbone (its width, or a text decoder): say so, since no flag asked for it
        where = rule.get("backbone") or f"a {rule['width']}-wide backbone"  # runs written before: width only
        print(f"lr: {rule['lr']:g} (the {metrics.get('method')} default on {where}: {rule['rule']})")

def print_search(metrics: dict[str, Any]) -> None:
    """``--paper-search``: every setting tried with its validation average, and the one chosen."""
    search = metrics.get("search")
    if not search:
        return
    chosen = search["chosen"]
    print(f"paper search: {len(search['results'])} settings on {search['selected_on']}:")
    for r in search["results"]:
        mark = "  <- chosen" if all(r.get(k, chosen[k]) == chosen[k] for k in chosen) else ""
        lr = f"  lr {r['lr']:g}" if "lr" in r else ""
        print(f"  m {r['prompt_length']:>3}  N_r {r['experts']:>3}{lr}  validation {r['average']:6.2f}{mark}")
    print(f"chose m = {chosen['prompt_length']}, N_r = {chosen['experts']}, lr {chosen['lr']:g}; seed(s) "
          f"{' '.join(map(str, metrics.get('seeds', [])))} trained with it (only these runs score the test split)")


def print_scores(metrics: dict[str, Any], title: str = "validation scores:") -> None:
    """Per task the selection metric's score (and majority baseline), then their average.

    Runs selected by a class metric (own data: accuracy by default, or ``--metric``) also show
    accuracy and macro-F1 beside it and name the metric; built-in suites print as they always did.
    """
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
        print(format_health(metrics["routing"], examples=_routed_examples(metrics)))
    if "trainable_percent" in metrics:
        report = metrics.get("parameters") or {}
        stored = metrics.get("trainable_params", report.get("trainable"))
        count = f"{stored:,} parameters = " if stored is not None else ""
        print(f"trainable: {count}{metrics['trainable_percent']:.3f}% of the backbone, "
              f"activated prompt tokens: {metrics['activated_prompt_tokens']}")
        if "activated" in report:  # what one example uses (our reading of the paper's "Para" for MEPT)
            print(f"activated per example: {report['activated']:,} parameters = {report['activated_percent']:.3f}% "
                  f"of the backbone (prompts {report['activated_prompt']:,})")


def _routed_examples(metrics: dict[str, Any]) -> str:
    """What the routing summary was measured on: a split, or the file ``mept eval --file`` scored."""
    if metrics.get("file"):
        return f"examples of {Path(metrics['file']).name}"
    return f"{metrics.get('split', 'validation')} examples"
