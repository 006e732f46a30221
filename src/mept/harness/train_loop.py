"""One optimisation step's pieces: the loss, micro-batches and the per-epoch batch plan.

The second step of the harness: :func:`mept.harness.train.train` calls these once per step; they know
nothing of run folders or reports.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F

from mept.data.encode import task_logits
from mept.harness.evaluate import model_inputs
from mept.model.adapter import AdapterModel


def task_loss(model: AdapterModel, batch: dict[str, torch.Tensor], form: str, forward: Any = None) -> torch.Tensor:
    """The training loss; ``forward`` is the Accelerate-wrapped model (DDP syncs gradients through it)."""
    forward = forward or model
    out = forward(**model_inputs(batch))
    if form not in ("cls", "image_cls"):
        return out.loss  # the model adds the routers' auxiliary loss (out.router_aux_loss) to its own
    loss = F.cross_entropy(task_logits(out.logits.float(), batch), batch["class_ids"])  # over the task's classes
    aux = out.get("router_aux_loss")  # this forward's weighted routing loss, returned with its output
    return loss if aux is None else loss + aux


def loss_terms(batch: dict[str, torch.Tensor], form: str) -> torch.Tensor:
    """How many terms a batch's mean loss averages: examples, or target tokens for text generation."""
    if form in ("cls", "image_cls"):
        return torch.tensor(float(len(batch["class_ids"])), device=batch["class_ids"].device)
    labels = batch["labels"][:, 1:] if form == "causal_lm" else batch["labels"]  # causal LMs predict labels[:, 1:]
    return (labels != -100).sum().float()


def micro_batches(chosen: list[int], accumulation_steps: int) -> list[list[int]]:
    """Split this process's share of a step's batch into ``accumulation_steps`` consecutive parts (none empty)."""
    size = math.ceil(len(chosen) / accumulation_steps)
    return [chosen[k : k + size] for k in range(0, len(chosen), size)]


def accumulate_gradients(
    model: Any, inner: AdapterModel, batches: list[dict[str, torch.Tensor]], form: str, accelerator: Any, idle: bool = False
) -> torch.Tensor:
    """Forward and backward over one step's micro-batches; returns the step's loss.

    Gradients end up those of the mean loss over the *global* batch, whatever the split: each
    micro-batch's mean loss is weighted by its share of the loss terms (:func:`loss_terms`) of the
    process's part, and with several processes by ``world * n_part / n_global``, since DDP averages
    gradients over processes -- also when a batch does not split evenly, or when a process is
    ``idle`` (a batch smaller than the process count: it runs one example, weighted 0). With one
    process and one micro-batch the weight is exactly 1. A non-finite loss is returned before its
    backward pass (NaN on every process if any process got one), for the caller to stop the run.
    """
    counts = [loss_terms(b, form) * (0.0 if idle else 1.0) for b in batches]
    total = torch.stack(counts).sum()
    if accelerator.num_processes > 1:
        total = accelerator.reduce(total.clone(), reduction="sum") / accelerator.num_processes
    step_loss = torch.zeros((), device=accelerator.device)
    for k, batch in enumerate(batches):
        weight = counts[k] / total.clamp(min=1e-12)
        last = k == len(batches) - 1  # DDP syncs gradients once, on the last micro-batch
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            with accelerator.autocast():
                loss = task_loss(inner, batch, form, forward=model)
            finite = torch.isfinite(loss.detach()).float()
            if accelerator.num_processes > 1:  # all processes stop together (one skipping backward would hang DDP)
                finite = accelerator.reduce(finite, reduction="sum") / accelerator.num_processes
            if finite.item() < 1:
                return loss.detach() if not torch.isfinite(loss) else torch.full_like(loss.detach(), float("nan"))
            accelerator.backward(loss * weight)
        step_loss = step_loss + loss.detach() * weight
    if accelerator.num_processes > 1:  # the global batch's mean loss, the same number one process reports
        step_loss = accelerator.reduce(step_loss, reduction="mean")
    return step_loss


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, window: int = 32) -> list[list[int]]:
    """The batches of one epoch: shuffled, then length-grouped within windows of ``window`` batches.

    Mixture training mixes short and very long tasks (MultiRC paragraphs); grouping similar lengths
    keeps padding, and so step time, low. Fully determined by (seed, epoch), which is what makes
    a resumed run see exactly the batches an uninterrupted one would.
    """
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
