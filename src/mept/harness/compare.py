"""``mept compare``: MEPT against what a practitioner would use instead, on their data, fair by construction.

Every method runs through the same harness (``mept train``): the same files, template, label
space, head and head pooling, text budget (``--max-length`` text tokens for all), steps, batch
and seeds. Each method gets its own learning rate, chosen on validation from its family's small
grid around the lr it would train at by default on this backbone (``mept train --lr-grid auto``:
``compare_lr_grid`` of its config class -- prompts 3e-3..3e-2, LoRA 3e-4..3e-3, full fine-tuning
1e-5..1e-4, probe 3e-3..3e-2, our grids, not a paper's -- moved as the method's default moves with the
backbone: MEPT 1.5e-3..1.5e-2 on a 768-wide encoder, 3e-5..3e-4 on a text decoder), then trains every
seed at that rate. Each method runs in its own process, so its peak memory is its own.

The table: trainable parameters, parameters activated per example, activated prompt tokens, chosen lr, validation and test score
(mean ± std over seeds), the paired difference of test scores against MEPT (same seeds) with a
paired t-test and its Holm-adjusted p over the table's tests ("decided" uses the adjusted p), train seconds per run, peak memory, and for routed methods how many layers' routers collapsed
on the test split after training. Written as ``compare.json``,
``compare.csv`` and ``compare.png`` (test score per method, ± std). With more than one evaluation per run
(``--eval-every``) each method's learning curve (:mod:`mept.harness.curves`: validation against steps and
train seconds, where it peaked, whether it was still rising) goes into ``compare.json`` and ``curves.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mept.core.registry import all_method_names
from mept.errors import MeptError
from mept.files.ownership import OutputKind, claim_output
from mept.files.safe_names import file_component
from mept.harness.checkpoint import checkpoint_step
from mept.harness.curves import curve_summary, method_curve, plot_curves
from mept.harness.run_folder import CHECKPOINT, RunFolder, move_aside, output_lock, settle
from mept.harness.signals import Terminated
from mept.harness.stats import holm, paired_test
from mept.harness.train_config import check_seeds

DEFAULT_METHODS = ["mept", "prompt_tuning", "ptuning_v2", "lora", "full", "probe"]
REFERENCE = "mept"
CONFIG_NAME = "compare_config.json"  # written first: it marks the folder as a comparison mept writes
RESULTS = ("compare.json", "compare.csv", "compare.png", "curves.png")
STOP_SECONDS = 120  # how long a method's run may take to stop after a forwarded Ctrl-C / SIGTERM


def _entries() -> frozenset[str]:
    return frozenset({CONFIG_NAME, *RESULTS, *all_method_names(), *(f"{m}.log" for m in all_method_names())})


# What `mept compare --output` holds, for the one ownership check (mept.files.ownership.claim_output)
COMPARISON = OutputKind("a mept comparison", marker=CONFIG_NAME, entries=_entries)


@dataclass
class CompareConfig:
    """What ``mept compare`` runs; ``train_args`` are passed to every ``mept train`` unchanged."""

    train_file: str
    test_file: str
    output: str
    val_file: str | None = None
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    train_args: list[str] = field(default_factory=list)
    lr_grid_seed: int = 42  # the grid is searched with one seed (the harness's --lr-grid), then every seed trains
    search_lr: bool = True  # False: each method's default lr, no grid (a cheaper, reduced comparison)
    overwrite: bool = False  # replace an earlier comparison in ``output`` (only one mept wrote)
    progress: bool = True  # a line per method as it starts and ends; the methods' own progress lines in their logs

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in all_method_names()]
        if unknown:
            raise MeptError(f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(all_method_names())}")
        if len(set(self.methods)) != len(self.methods):
            raise MeptError("--methods names a method twice")
        check_seeds(self.seeds)
        for name in ("train_file", "test_file", "val_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).expanduser().exists():
                raise MeptError(f"--{name.replace('_', '-')} {value} does not exist")


def train_command(cfg: CompareConfig, method: str) -> list[str]:
    files = ["--train-file", cfg.train_file, "--test-file", cfg.test_file]
    if cfg.val_file:
        files += ["--val-file", cfg.val_file]
    # no grid: no --lr, so that the run takes its method's default on this backbone (TrainConfig.default_lr)
    lr = ["--lr-grid", "auto"] if cfg.search_lr else []  # the grid around the default on this backbone
    return [sys.executable, "-m", "mept.cli", "train", "--method", method, *files, *cfg.train_args,
            *lr, "--seed", str(cfg.lr_grid_seed), "--seeds", *map(str, cfg.seeds),
            "--output", str(method_folder(cfg, method)), *([] if cfg.progress else ["--no-progress"])]


def method_folder(cfg: CompareConfig, method: str) -> Path:
    return Path(cfg.output) / file_component(method)


def run_method(cfg: CompareConfig, method: str) -> dict[str, Any]:
    """Train ``method`` (grid, then seeds) in its own process; return its row of the table.

    Ctrl-C or SIGTERM to compare is passed on to the method's process (started in a session of its
    own, so it gets the signal once), which unwinds as ``mept train`` does -- lock released, its last
    checkpoint kept -- before compare reports what exists (:class:`Stopped`).
    """
    out = method_folder(cfg, method)
    log = out.with_name(f"{out.name}.log")
    choice = "lr grid around its default on this backbone" if cfg.search_lr else "default lr"
    if cfg.progress:
        print(f"compare: {method} ({choice}, seeds "
              f"{' '.join(map(str, cfg.seeds))}); log {log}", file=sys.stderr, flush=True)
    with open(log, "w") as f:
        child = subprocess.Popen(train_command(cfg, method), stdout=f, stderr=subprocess.STDOUT,
                                 env=os.environ.copy(), start_new_session=True)
        try:
            code = child.wait()
        except KeyboardInterrupt as exc:
            stop_child(child, exc)
            raise
    if code != 0:
        tail = [line for line in log.read_text().splitlines() if line.startswith("error:")]
        raise MeptError(f"{method} failed ({tail[-1] if tail else f'exit {code}'}); see {log}")
    return method_row(method, out, cfg.seeds)


def stop_child(child: subprocess.Popen, exc: BaseException) -> None:
    """Pass Ctrl-C (SIGINT) or SIGTERM on to ``child`` and wait for it to unwind; kill it only if it hangs."""
    import signal

    child.send_signal(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    for _ in range(3):  # a second signal to compare while waiting does not abandon the child
        try:
            child.wait(timeout=STOP_SECONDS)
            return
        except subprocess.TimeoutExpired:
            break
        except KeyboardInterrupt:
            continue
    child.kill()
    child.wait()


def method_warnings(cfg: CompareConfig, method: str) -> list[str]:
    """The ``warning:`` lines of a method's log (small validation set, truncation...): compare shows them."""
    log = method_folder(cfg, method).with_name(f"{method_folder(cfg, method).name}.log")
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return list(dict.fromkeys(line for line in lines if line.startswith("warning: ")))


def method_row(method: str, out: Path, seeds: list[int]) -> dict[str, Any]:
    summary = json.loads(RunFolder(out).metrics.read_text())
    runs = [json.loads(RunFolder(out).seed(s).metrics.read_text()) for s in seeds]
    return {
        "method": method,
        "trainable": runs[0]["trainable_params"],
        # what one example uses (routed methods: the chosen experts only); older metrics lack it
        "activated": runs[0].get("parameters", {}).get("activated", runs[0]["trainable_params"]),
        "activated_prompt_tokens": runs[0]["activated_prompt_tokens"],
        "lr": summary["lr"],
        "lr_grid": summary.get("lr_grid", []),
        "validation": [r["average"] for r in runs],
        "test": [r["test"]["average"] for r in runs],
        "train_seconds": [r["timing"]["train_seconds"] for r in runs],
        "peak_memory_mb": max(r["timing"]["peak_memory_mb"] for r in runs),
        "majority": runs[0]["majority"],
        "routing": routing_health(runs),
        "curve": method_curve(dict(zip(seeds, runs))),
    }


def routing_health(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trained router's health on the test split, per seed: a router can be fine at
    initialisation and send every input to one expert after training, and a comparison that
    hides this credits MEPT's routing with a score it did not earn. None for unrouted methods."""
    found = [r.get("test", {}).get("routing") for r in runs]
    if not all(found):
        return None
    collapsed = [len(f["collapsed_layers"]) for f in found]
    return {"layers": len(found[0]["layers"]), "collapsed_layers": collapsed,
            "collapsed_layers_mean": statistics.fmean(collapsed),
            "mean_entropy": [f["mean_entropy"] for f in found]}


def routing_cell(row: dict[str, Any]) -> str:
    health = row.get("routing")
    return f"{health['collapsed_layers_mean']:.1f} of {health['layers']}" if health else "-"


def paired(reference: list[float], other: list[float]) -> dict[str, Any]:
    """Mean paired difference ``other - reference`` over seeds, its two-sided paired t-test p-value
    and the 95% t interval (:func:`mept.harness.stats.paired_test`, the one test every benchmark uses).

    p is None with one seed (no variance to test) and 1.0 when every difference is the same
    zero; with identical non-zero differences the test is degenerate (p = 0).
    """
    test = paired_test(list(other), list(reference))
    if test["n"] < 2:
        return {"difference": test["mean_diff"], "p": None, "ci_low": None, "ci_high": None}
    return {"difference": test["mean_diff"], "p": float(test["p_two_sided"]),
            "ci_low": float(test["ci_low"]), "ci_high": float(test["ci_high"])}


def summarise(rows: list[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Add mean/std and the paired comparison with MEPT (or, without MEPT, the first method).

    The table's tests against the reference are one family: each row also gets its Holm-adjusted
    p (``vs_reference_p_holm``, :func:`mept.harness.stats.holm`), and ``vs_reference_decided`` is whether
    that adjusted p is below ``alpha`` -- with five baselines, a raw p < 0.05 in one of them
    happens by chance far more often than one time in twenty.
    """
    ref = next((r for r in rows if r["method"] == REFERENCE), rows[0])
    for r in rows:
        for key in ("validation", "test", "train_seconds"):
            r[f"{key}_mean"] = statistics.fmean(r[key])
            r[f"{key}_std"] = statistics.stdev(r[key]) if len(r[key]) > 1 else 0.0
        r["reference"] = ref["method"]
        r.update({f"vs_reference_{k}": v for k, v in paired(ref["test"], r["test"]).items()})
    others = [r for r in rows if r is not ref]
    raw = [math.nan if r["vs_reference_p"] is None else r["vs_reference_p"] for r in others]
    for r, p in zip(others, holm(raw)):
        r["vs_reference_p_holm"] = None if math.isnan(p) else p
        r["vs_reference_decided"] = not math.isnan(p) and p < alpha
    ref.update(vs_reference_p_holm=None, vs_reference_decided=False)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    ref = rows[0]["reference"]
    lines = [f"| method | trainable | activated per example | activated prompt tokens | lr | validation | test "
             f"| test - {ref} (paired t-test p; Holm-adjusted p) | train s/run | peak MB "
             f"| collapsed layers (test, mean over seeds) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["method"] == ref:
            diff = "-"
        else:
            p, holm_p = r["vs_reference_p"], r["vs_reference_p_holm"]
            diff = f"{r['vs_reference_difference']:+.2f}" + (
                f" (p={p:.3f}; Holm {holm_p:.3f}{', decided' if r['vs_reference_decided'] else ''})"
                if p is not None else " (1 seed)")
        lines.append(
            f"| {r['method']} | {r['trainable']:,} | {r['activated']:,} | {r['activated_prompt_tokens']} | {r['lr']:g} | "
            f"{r['validation_mean']:.2f} ± {r['validation_std']:.2f} | {r['test_mean']:.2f} ± {r['test_std']:.2f} | "
            f"{diff} | {r['train_seconds_mean']:.1f} | {r['peak_memory_mb']:,.0f} | {routing_cell(r)} |")
    return "\n".join(lines)


def write_outputs(rows: list[dict[str, Any]], out: Path, title: str) -> dict[str, Path]:
    files = {"json": out / "compare.json", "csv": out / "compare.csv", "png": out / "compare.png"}
    files["json"].write_text(json.dumps({"title": title, "rows": rows}, indent=2))
    flat = ["method", "trainable", "activated", "activated_prompt_tokens", "lr", "validation_mean", "validation_std",
            "test_mean", "test_std", "vs_reference_difference", "vs_reference_p", "vs_reference_p_holm",
            "vs_reference_decided", "vs_reference_ci_low",
            "vs_reference_ci_high", "train_seconds_mean", "peak_memory_mb"]
    with open(files["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*flat, "collapsed_layers_mean", "routed_layers", "best_step",
                                               "still_rising"])
        writer.writeheader()
        for r in rows:
            health, curve = r.get("routing") or {}, r.get("curve") or {}
            writer.writerow({**{k: r[k] for k in flat}, "collapsed_layers_mean": health.get("collapsed_layers_mean", ""),
                             "routed_layers": health.get("layers", ""), "best_step": curve.get("best_step", ""),
                             "still_rising": curve.get("still_rising", "")})
    plot(rows, files["png"], title)
    curves = learning_curves(rows)
    if curves:
        files["curves"] = out / "curves.png"
        plot_curves(curves, files["curves"], textwrap.fill(title, 110))
    return files


def learning_curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The methods whose runs were evaluated more than once (a single evaluation is a point, not a curve)."""
    return {r["method"]: r["curve"] for r in rows if len((r.get("curve") or {}).get("points", [])) > 1}


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2, 3.5))
    names = [r["method"] for r in rows]
    ax.bar(names, [r["test_mean"] for r in rows], yerr=[r["test_std"] for r in rows], capsize=4,
           color=["tab:red" if r["method"] == rows[0]["reference"] else "tab:blue" for r in rows])
    low = min(r["test_mean"] - r["test_std"] for r in rows)
    ax.set_ylim(max(0.0, math.floor(low / 10) * 10 - 10), 100)
    ax.set_ylabel("test score (mean ± std over seeds)")
    ax.set_title(textwrap.fill(title, 70), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during ``mept compare``, carrying what exists by then (for the CLI to print)."""

    def __init__(self, cause: KeyboardInterrupt, report: str) -> None:
        super().__init__(report)
        self.cause, self.report = cause, report


def compare(cfg: CompareConfig) -> dict[str, Any]:
    """Run every method into ``cfg.output`` and write the table; the folder is claimed first
    (:func:`mept.files.ownership.claim_output`), so nothing is opened before an earlier comparison, a run
    folder or a folder of the user's is refused (or, with ``overwrite``, an earlier comparison moved aside)."""
    out = Path(cfg.output)
    claim_output(out, COMPARISON, overwrite=cfg.overwrite)
    with output_lock(out):
        if claim_output(out, COMPARISON, overwrite=cfg.overwrite):  # again, now that no one else writes there
            move_aside(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        finished = False
        try:
            result = _compare(cfg, out)
            finished = True
        finally:
            settle(out, finished)
    return result


def _compare(cfg: CompareConfig, out: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for method in cfg.methods:
        try:
            rows.append(run_method(cfg, method))
        except KeyboardInterrupt as exc:
            raise Stopped(exc, stopped_report(cfg, [r["method"] for r in rows], method)) from None
        finally:
            warnings += [w for w in method_warnings(cfg, method) if w not in warnings]
    for line in warnings:  # the data's own warnings (a tiny validation set...) belong beside the table
        print(line, file=sys.stderr)
    rows = summarise(rows)
    how = "lr per method chosen on validation" if cfg.search_lr else "each method's default lr (no grid)"
    title = (f"{Path(cfg.train_file).name}: {len(cfg.seeds)} seed(s), {how} "
             f"({' '.join(cfg.train_args)})")
    files = write_outputs(rows, out, title)
    return {"rows": rows, "table": format_table(rows), "files": files, "title": title,
            "curves": curve_summary(learning_curves(rows)),
            "warnings": [w.removeprefix("warning: ") for w in warnings]}


def stopped_report(cfg: CompareConfig, done: list[str], stopped: str) -> str:
    """What a stopped comparison leaves: finished methods, the stopped one's checkpoint, what never ran."""
    parts = [f"finished: {', '.join(f'{m} ({method_folder(cfg, m)})' for m in done)}" if done else "no method finished"]
    folder = method_folder(cfg, stopped)
    steps = sorted(folder.rglob(f"{CHECKPOINT}/trainer_state.json"))
    saved = [f"{p.parent.parent.name} at step {checkpoint_step(p.parent)}" for p in steps]
    parts.append(f"stopped: {stopped} in {folder} (" + (f"checkpoints: {', '.join(saved)}; continue it with "
                 f"`mept train --resume --output {folder}`" if saved else "no checkpoint yet") + ")")
    rest = cfg.methods[cfg.methods.index(stopped) + 1:]
    if rest:
        parts.append(f"not started: {', '.join(rest)}")
    return "; ".join(parts) + "; no table was written"
