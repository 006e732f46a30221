"""``mept train --report-to``: the run logged where practitioners look (TensorBoard, MLflow, W&B, Trackio).

Through Accelerate's own tracker classes (``accelerate.tracking``), started by the run's
``Accelerator`` and written by its main process only. What is logged (ours):

- at the start, the run's settings (``run_config.json`` flattened: lists as JSON text);
- every step, ``train/loss`` and each optimizer group's learning rate (``train/lr/prompt``,
  ``train/lr/router``, ``train/lr/head``);
- at every evaluation, ``validation/average`` and each task's scores (``validation/TASK/METRIC``),
  and for routed methods the routing health of the same forwards (:mod:`mept.core.routing_health`):
  ``routing/mean_entropy``, ``routing/collapsed_layers`` and per prompted layer
  ``routing/layer_N/entropy``, ``.../collapsed`` (0 or 1), ``.../experts_in_use``,
  ``.../top1_prob`` and the expert load ``.../load/expert_E`` (share of examples whose top-1 it
  is); TensorBoard and W&B also get that load as a histogram (``routing/layer_N/load``).

The run is named after its output folder (as given, e.g. ``runs/sst2``). TensorBoard's event
files go inside it (``RUN/tensorboard``), and so does W&B's run folder (``RUN/wandb``; offline with
``WANDB_MODE=offline``). MLflow logs to ``MLFLOW_TRACKING_URI`` (MLflow's default: ``mlflow.db``
in the working directory), experiment ``mept`` (or ``MLFLOW_EXPERIMENT_NAME``); Trackio to its
local store (``TRACKIO_DIR``), project ``mept``. The trackers are the ``tracking`` extra.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from mept.errors import MeptError, exception_line

TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")
PROJECT = "mept"
EXTRA = 'pip install "mept[tracking]"'
TENSORBOARD_DIR = "tensorboard"  # inside the run folder
WANDB_DIR = "wandb"


def parse_report_to(values: list[str] | None) -> list[str]:
    """``--report-to`` as tracker names: ``none`` (or nothing) is none; names are checked, repeats dropped."""
    names = list(dict.fromkeys(v.strip().lower() for v in values or [] if v.strip()))
    unknown = [n for n in names if n not in (*TRACKERS, "none")]
    if unknown:
        raise MeptError(f"--report-to {', '.join(unknown)}: not a tracker; use {', '.join(TRACKERS)} or none")
    if "none" in names and len(names) > 1:
        raise MeptError("--report-to none cannot be combined with trackers; name the trackers, or none alone")
    return [n for n in names if n != "none"]


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken parent package
        return False


def check_trackers(names: list[str]) -> None:
    """Every tracker asked for can be used here, or one line saying what to install or set (before a run starts)."""
    for name in names:
        if not installed(name):
            raise MeptError(f"--report-to {name}: the {name} package is not installed; {EXTRA}")
    if "wandb" in names and not _wandb_can_log():
        raise MeptError("--report-to wandb: W&B is not logged in on this machine; run `wandb login`, or log offline "
                        "with WANDB_MODE=offline (and `wandb sync` the run folder's wandb/ later)")


def _wandb_can_log() -> bool:
    """Offline or disabled mode, an API key in the environment, or one saved by ``wandb login`` (~/.netrc)."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def flat_config(values: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Settings as the trackers take them: scalars, nested keys dotted, lists and None as JSON text."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flat_config(value).items()})
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = json.dumps(value)
    return out


class Tracking:
    """The trackers of one training run (one seed, one lr), and what it logs to them."""

    def __init__(self, names: list[str], out: Path, run_name: str) -> None:
        check_trackers(names)
        self.names = names
        self.out = Path(out)
        self.run_name = run_name

    def trackers(self) -> list[Any] | None:
        """Accelerate tracker instances for ``Accelerator(log_with=...)``; None when none is asked for."""
        if not self.names:
            return None
        from accelerate import tracking

        made = []
        for name in self.names:
            if name == "tensorboard":
                made.append(tracking.TensorBoardTracker(TENSORBOARD_DIR, self.out))
            elif name == "mlflow":
                made.append(tracking.MLflowTracker(experiment_name=PROJECT, run_name=self.run_name))
            elif name == "wandb":
                made.append(tracking.WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), name=self.run_name,
                                                  dir=str(self.out)))
            else:
                made.append(tracking.TrackioTracker(PROJECT, name=self.run_name))
        return made

    def start(self, accelerator: Any, settings: dict[str, Any]) -> None:
        if not self.names:
            return
        if "wandb" in self.names:
            (self.out / WANDB_DIR).mkdir(parents=True, exist_ok=True)  # W&B writes under dir=... only if it exists
        try:
            accelerator.init_trackers(PROJECT, config=flat_config(settings))
        except Exception as exc:  # each tracker fails in its own way (a server down, a bad URI): one line
            first = exception_line(exc)
            raise MeptError(f"--report-to: a tracker could not start ({type(exc).__name__}: {first})") from None

    def log_step(self, accelerator: Any, step: int, loss: float, optimizer: Any) -> None:
        if not self.names:
            return
        values = {"train/loss": loss}
        for group in optimizer.param_groups:
            values[f"train/lr/{group.get('name', 'group')}"] = group["lr"]
        accelerator.log(values, step=step)

    def log_evaluation(self, accelerator: Any, step: int, result: dict[str, Any]) -> None:
        if not self.names:
            return
        values: dict[str, float] = {"validation/average": result["average"]}
        for task, scores in result.get("tasks", {}).items():
            values.update({f"validation/{task}/{k}": v for k, v in scores.items() if isinstance(v, (int, float))})
        health = result.get("routing") or {}
        if health:
            values["routing/mean_entropy"] = health["mean_entropy"]
            values["routing/collapsed_layers"] = len(health["collapsed_layers"])
            for row in health["layers"]:
                at = f"routing/layer_{row['layer']}"
                values.update({f"{at}/entropy": row["entropy"], f"{at}/collapsed": int(row["collapsed"]),
                               f"{at}/experts_in_use": row["experts_in_use"], f"{at}/top1_prob": row["mean_top1_prob"]})
                values.update({f"{at}/load/expert_{e}": share for e, share in enumerate(row["share"])})
        accelerator.log(values, step=step)
        if health:
            self._log_load_histograms(accelerator, step, health)

    def _log_load_histograms(self, accelerator: Any, step: int, health: dict[str, Any]) -> None:
        """Each layer's expert load as a histogram with one bin per expert (TensorBoard, W&B)."""
        if not accelerator.is_main_process:
            return
        import numpy as np

        examples = health["examples"]
        for row in health["layers"]:
            counts = np.round(np.asarray(row["share"]) * examples)  # (E,) examples whose top-1 is each expert
            edges = np.arange(len(counts) + 1) - 0.5
            tag = f"routing/layer_{row['layer']}/load"
            if "tensorboard" in self.names:
                ids = np.arange(len(counts))
                accelerator.get_tracker("tensorboard", unwrap=True).add_histogram_raw(
                    tag, min=float(ids[counts > 0].min()), max=float(ids[counts > 0].max()), num=int(counts.sum()),
                    sum=float((ids * counts).sum()), sum_squares=float((ids * ids * counts).sum()),
                    bucket_limits=(edges[1:]).tolist(), bucket_counts=counts.tolist(), global_step=step)
            if "wandb" in self.names:
                import wandb

                accelerator.get_tracker("wandb", unwrap=True).log({tag: wandb.Histogram(np_histogram=(counts, edges))}, step=step)

    def finish(self, accelerator: Any) -> None:
        """Close every tracker (not ``end_training``: a multi-seed run keeps its process group for the next seed)."""
        for tracker in getattr(accelerator, "trackers", []):
            tracker.finish()
