"""Training: one linear loop, from a :class:`TrainConfig` to ``metrics.json``.

``prepare`` turns the config into data, backbone, prompted model and encoder
(validating everything before the output folder is touched); ``train`` runs
the loop with Accelerate (CPU, one GPU, or ``accelerate launch`` on many),
checkpointing every ``save_every`` steps so ``--resume`` after a crash ends
with the same metrics as an uninterrupted run; ``run`` adds seeds and the
learning-rate grid on top.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import resource
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mept import data as mept_data
from mept.backbones import load_backbone, resolve
from mept.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from mept.data.registry import TaskSpec, check_splits
from mept.encode import Encoder, Feature, LabelSpace, task_logits
from mept.errors import MeptError
from mept.evaluate import evaluate, model_inputs, to_device
from mept.model import PromptedModel, atomic_write, get_model
from mept.registry import make_config
from mept.train_config import TrainConfig

SPLIT_SEED = 0  # data splits are fixed across training seeds, so seeds are compared on the same examples
RUN_CONFIG = "run_config.json"
METRICS = "metrics.json"
LABELS = "labels.json"
INCOMPLETE = ".incomplete"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Prepared:
    config: TrainConfig
    model: PromptedModel
    encoder: Encoder
    specs: dict[str, TaskSpec]
    train: list[Feature]
    eval_sets: dict[str, list[Feature]]
    test_sets: dict[str, list[Feature]]
    truncated: dict[str, int]
    sizes: dict[str, int] = field(default_factory=dict)  # examples per "task/split", beside truncated


def expand_tasks(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for task in mept_data.suite_tasks(name):
            if task not in out:
                out.append(task)
    return out


def load_data(cfg: TrainConfig) -> tuple[dict[str, TaskSpec], dict[str, dict[str, list]]]:
    """Specs and splits of the training tasks plus any cross-task evaluation tasks."""
    if cfg.train_file:
        spec, splits = mept_data.load_custom(
            cfg.train_file, cfg.val_file, text_field=cfg.text_field, text_pair_field=cfg.text_pair_field,
            label_field=cfg.label_field, template=cfg.template,
            verbalizer=tuple(cfg.verbalizer) if cfg.verbalizer else None, seed=SPLIT_SEED,
            task_name=cfg.task_name, path_test=cfg.test_file,
        )
        return {spec.name: spec}, {spec.name: check_splits(spec.name, splits)}
    folder = image_folder(cfg)
    if folder is not None:
        from mept.data.images import load_image_folder

        spec, splits = load_image_folder(folder, seed=SPLIT_SEED)
        return {spec.name: spec}, {spec.name: check_splits(spec.name, splits)}
    names = expand_tasks(cfg.tasks + (cfg.eval_tasks or []))
    specs = {n: mept_data.get_task(n) for n in names}
    splits = {n: mept_data.load_task(n, source=cfg.source, data_dir=cfg.data_dir, seed=SPLIT_SEED) for n in names}
    return specs, splits


def image_folder(cfg: TrainConfig) -> Path | None:
    """``--dataset PATH`` that is no task name: class folders, train.csv + val.csv (VTAB-1k), or a CSV list."""
    if len(cfg.tasks) != 1 or cfg.tasks[0] in mept_data.task_names():
        return None
    path = Path(cfg.tasks[0]).expanduser()
    return path if path.exists() else None


def resolve_format(cfg: TrainConfig, specs: dict[str, TaskSpec]) -> str:
    if cfg.format != "auto":
        return cfg.format
    kinds = {s.kind for s in specs.values()}
    if kinds == {"image"}:
        return "image_cls"
    if "image" in kinds:
        raise MeptError("cannot mix image and text tasks in one run")
    import transformers

    path = resolve(cfg.model)
    try:
        model_cfg = transformers.AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise MeptError(f"cannot load model {cfg.model!r}: {str(exc).splitlines()[0]}") from None
    if getattr(model_cfg, "is_encoder_decoder", False):
        return "seq2seq"
    if "generation" in kinds:
        return "causal_lm"
    return "cls"


def _subsample(items: list, n: int | None, seed: int) -> list:
    if n is None or len(items) <= n:
        return items
    idx = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in idx]


def prepare(cfg: TrainConfig, eval_tasks: list[str] | None = None) -> Prepared:
    """Build data, model and encoder. ``eval_tasks`` evaluates a trained run on other tasks (cross-task)."""
    seed_everything(cfg.seed)  # the prompts' random init is part of the run
    method_cfg = make_config(cfg.method, **cfg.method_settings())  # settings are checked before any loading
    specs, splits = load_data(replace(cfg, eval_tasks=(cfg.eval_tasks or []) + (eval_tasks or [])) if eval_tasks else cfg)
    form = resolve_format(cfg, specs)
    train_names = list(specs)[:1] if cfg.train_file or image_folder(cfg) else expand_tasks(cfg.tasks)
    eval_names = expand_tasks(eval_tasks or cfg.eval_tasks or []) or train_names
    if form == "cls" and any(specs[t].kind == "generation" for t in train_names + eval_names):
        raise MeptError("generation tasks need --format causal_lm or seq2seq")
    labels = None
    if form == "cls":  # the head's classes: words of the tasks the run was configured with
        labels = LabelSpace.build([specs[t] for t in dict.fromkeys(train_names + (expand_tasks(cfg.eval_tasks) if cfg.eval_tasks else []))])
        for t in eval_names:
            if t not in labels.task_words:
                labels.add_task(specs[t])
    num_labels = len(labels.words) if labels else None
    if form == "image_cls":
        num_labels = max(len(specs[t].verbalizer) for t in train_names)
    model, encoder = build_model(cfg, method_cfg, form, labels, num_labels)
    truncated: dict[str, int] = {}
    train: list[Feature] = []
    for t in train_names:
        feats, cut = encoder.featurize(_subsample(splits[t]["train"], cfg.max_train_examples, SPLIT_SEED))
        train += feats
        truncated[f"{t}/train"] = cut
    if model.method.wants_text_init:
        init_from_task_text(model, train)
    eval_sets, test_sets = {}, {}
    for t in eval_names:
        eval_sets[t], truncated[f"{t}/validation"] = encoder.featurize(
            _subsample(splits[t]["validation"], cfg.max_eval_examples, SPLIT_SEED))
        if "test" in splits[t]:
            test_sets[t], truncated[f"{t}/test"] = encoder.featurize(
                _subsample(splits[t]["test"], cfg.max_eval_examples, SPLIT_SEED))
    sizes = {f"{t}/train": sum(f.example.task == t for f in train) for t in train_names}
    sizes.update({f"{t}/validation": len(f) for t, f in eval_sets.items()})
    sizes.update({f"{t}/test": len(f) for t, f in test_sets.items()})
    warn_truncation(truncated, sizes, cfg.max_length)
    return Prepared(cfg, model, encoder, specs, train, eval_sets, test_sets, truncated, sizes)


def build_model(
    cfg: TrainConfig, method_cfg: Any, form: str, labels: LabelSpace | None, num_labels: int | None
) -> tuple[PromptedModel, Encoder]:
    """Backbone + prompt method + encoder for a resolved output form; no data needed (``mept predict``)."""
    quant = _quantization(cfg)
    backbone = load_backbone(cfg.model, form, num_labels=num_labels, **quant)
    model = get_model(backbone.model, method_cfg, modules_to_save=cfg.modules_to_save)
    limit = model.spec.max_positions
    if form != "image_cls" and limit is not None and cfg.max_length > limit:
        raise MeptError(f"--max-length {cfg.max_length} exceeds {cfg.model}'s {limit} positions (prompt slots "
                        f"included); use --max-length {limit} or less")
    if cfg.max_length <= model.num_slots:
        raise MeptError(f"--max-length {cfg.max_length} leaves no room for text after {model.num_slots} prompt slots")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, Encoder(form, backbone.processor, model.num_slots, cfg.max_length, labels)


def warn_truncation(truncated: dict[str, int], sizes: dict[str, int], max_length: int) -> None:
    """Say up front, before any training, how much of each split ``--max-length`` cuts."""
    cut = [(k, n, sizes.get(k, 0)) for k, n in truncated.items() if n]
    if not cut:
        return
    parts = ", ".join(f"{k} {n} of {total} ({100 * n / max(total, 1):.0f}%)" for k, n, total in cut)
    print(f"warning: longer than --max-length {max_length} (prompt slots included), truncated: {parts}",
          file=sys.stderr)


@torch.no_grad()
def init_from_task_text(model: PromptedModel, train: list[Feature], max_tokens: int = 4096) -> None:
    """A method's initialisation from the token embeddings of (a sample of) the training text (PT-MoE's SVD)."""
    ids = [i for f in train[:256] for i in f.input_ids][:max_tokens]
    if not ids:
        raise MeptError(f"{model.prompt_config.method}'s initialisation from text needs text training data")
    embed = model.backbone.get_input_embeddings()
    model.method.init_from_embeddings(embed(torch.tensor(ids, device=embed.weight.device)))


def _quantization(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.quantize is None:
        return {}
    if not torch.cuda.is_available():
        raise MeptError("--quantize needs a CUDA GPU (bitsandbytes)")
    from transformers import BitsAndBytesConfig

    if cfg.quantize == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)}


def task_loss(model: PromptedModel, batch: dict[str, torch.Tensor], form: str, forward: Any = None) -> torch.Tensor:
    """The training loss; ``forward`` is the Accelerate-wrapped model (DDP syncs gradients through it)."""
    forward = forward or model
    if form in ("cls", "image_cls"):
        logits = task_logits(forward(**model_inputs(batch)).logits.float(), batch)  # (B, C)
        return model.add_aux_loss(F.cross_entropy(logits, batch["class_ids"]))
    return forward(**model_inputs(batch)).loss  # the model adds the routers' auxiliary loss to its own


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
    model: Any, inner: PromptedModel, batches: list[dict[str, torch.Tensor]], form: str, accelerator: Any, idle: bool = False
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


def save_label_space(out: Path, p: Prepared) -> None:
    """Write ``labels.json``: the output form, task specs and head classes, so that ``mept eval --file`` and
    ``mept predict`` rebuild the trained model from the run folder alone (no training data needed)."""
    from mept import __version__

    labels = p.encoder.labels
    train_tasks = sorted({f.example.task for f in p.train}, key=list(p.specs).index)
    info = {
        "mept_version": __version__,  # the file outlives the code: say which code wrote it
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
    atomic_write(out / LABELS, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2)))


def prepare_output(out: Path, cfg: TrainConfig, resume: bool) -> None:
    """Refuse to mix runs: an existing run is replaced only with --overwrite, continued only with --resume."""
    if resume:
        saved = out / RUN_CONFIG
        if not saved.exists():
            raise MeptError(f"--resume: {out} holds no run to resume (no {RUN_CONFIG})")
        previous = json.loads(saved.read_text())
        mine = cfg.to_dict()
        differ = [k for k in mine if k not in ("progress", "overwrite") and previous.get(k) != mine[k]]
        if differ:
            raise MeptError(f"--resume: settings differ from the run in {out}: {', '.join(differ)}")
        return
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise MeptError(f"output folder {out} already holds files; pass --overwrite to replace them or --resume to continue")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))


def train(cfg: TrainConfig, resume: bool = False, prepared: Prepared | None = None) -> dict[str, Any]:
    """Train one run (one seed, one lr) and write ``metrics.json`` in ``cfg.output``."""
    from accelerate import Accelerator

    wall_origin = time.perf_counter()  # wall time counts everything: loading, tokenising, evaluating, saving
    seed_everything(cfg.seed)
    p = prepared or prepare(cfg)
    out = Path(cfg.output)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    if accelerator.is_main_process:  # one process owns the run folder; the others wait until it is ready
        prepare_output(out, cfg, resume)
        save_label_space(out, p)
        (out / INCOMPLETE).write_text("training in progress; metrics.json appears when the run ends\n")
    accelerator.wait_for_everyone()
    model = p.model.to(accelerator.device)
    lr = cfg.lr if cfg.lr is not None else cfg.default_lr()
    groups = model.param_groups(lr, cfg.head_lr)
    if not groups:
        raise MeptError("nothing to train: prompts, routers and head are all frozen")
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    lengths = [len(f.input_ids) + len(f.target_ids) for f in p.train]
    steps_per_epoch = len(epoch_batches(lengths, cfg.batch_size, cfg.seed, 0))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    inner: PromptedModel = accelerator.unwrap_model(model)
    state: dict[str, Any] = {"step": 0, "best_score": None, "best_step": None, "history": [],
                             "train_seconds": 0.0, "wall_seconds": 0.0, "examples_seen": 0}
    ckpt = out / "checkpoint"
    if resume and find_checkpoint(ckpt) is not None:
        state = load_checkpoint(ckpt, inner, optimizer, scheduler)
        accelerator.print(f"resumed from step {state['step']}")
        wall_origin -= state.get("wall_seconds", 0.0)  # earlier sessions' wall time, up to their last checkpoint
    eval_every = cfg.eval_every or steps_per_epoch
    # a progress bar only on a terminal: in a log file it is noise, the per-evaluation lines say enough
    show_bar = cfg.progress and accelerator.is_main_process and sys.stderr.isatty()
    bar = tqdm(total=total, initial=state["step"], desc="train", disable=not show_bar)
    log = bar.write if show_bar else print
    rank, world = accelerator.process_index, accelerator.num_processes
    step = state["step"]
    plan, plan_epoch = [], -1
    last_ckpt = str(ckpt) if find_checkpoint(ckpt) else None
    while step < total:
        epoch, index = divmod(step, steps_per_epoch)
        if plan_epoch != epoch:
            plan, plan_epoch = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch), epoch
        step_start = time.perf_counter()  # train-only time: batch, forward, backward, update
        chosen = plan[index][rank::world]
        idle = not chosen  # a batch smaller than the process count: this process runs one example, weighted 0
        parts = micro_batches(chosen or plan[index][:1], cfg.gradient_accumulation_steps)
        batches = [to_device(p.encoder.collate([p.train[i] for i in part], train=True), accelerator.device) for part in parts]
        model.train()
        loss = accumulate_gradients(model, inner, batches, p.encoder.form, accelerator, idle)
        if not torch.isfinite(loss):
            bar.close()
            where = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
            raise MeptError(f"loss became {loss.item()} at step {step + 1}; stopped ({where}); try a lower --lr")
        if cfg.max_grad_norm is not None:
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step_loss = loss.item()  # also waits for the device, so the step's time is real
        step += 1
        state["step"] = step
        state["train_seconds"] = state.get("train_seconds", 0.0) + time.perf_counter() - step_start
        state["examples_seen"] = state.get("examples_seen", 0) + len(plan[index])
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}", ex_s=f"{examples_per_second(state):.1f}")
        if step % eval_every == 0 or step == total:
            t0 = time.perf_counter()
            result = evaluate(inner, p.encoder, p.specs, p.eval_sets, cfg.eval_batch_size, cfg.eval_mode)
            state["eval_seconds"] = time.perf_counter() - t0
            entry = {"step": step, "loss": round(step_loss, 6), "validation": result["average"]}
            # measured, so kept apart from the history (which identical runs reproduce exactly)
            state.setdefault("eval_train_seconds", []).append([step, round(state["train_seconds"], 3)])
            if result.get("routing"):
                entry["routing_entropy"] = result["routing"]["mean_entropy"]
                entry["collapsed_layers"] = len(result["routing"]["collapsed_layers"])
            state["history"].append(entry)
            if state["best_score"] is None or result["average"] > state["best_score"]:
                state["best_score"], state["best_step"], state["best_result"] = result["average"], step, result
                if accelerator.is_main_process:
                    inner.save_pretrained(out / "best")
            if accelerator.is_main_process:
                log(eval_line(step, total, step_loss, result["average"], state))
        if accelerator.is_main_process and (step % cfg.save_every == 0 or step == total):
            state["wall_seconds"] = time.perf_counter() - wall_origin
            save_checkpoint(ckpt, inner, optimizer, scheduler, state)
            last_ckpt = str(ckpt)
    bar.close()
    accelerator.wait_for_everyone()  # every process reloads the best adapter the main one wrote
    metrics = finish(inner, p, state, out, wall_origin)
    return metrics


def examples_per_second(state: dict[str, Any]) -> float:
    """Training throughput over train-only time (evaluation and checkpoint I/O excluded)."""
    return state.get("examples_seen", 0) / max(state.get("train_seconds", 0.0), 1e-9)


def eval_line(step: int, total: int, loss: float, score: float, state: dict[str, Any]) -> str:
    """One log line per evaluation: readable in a terminal and in a log file alike."""
    width = len(str(total))
    line = (f"step {step:>{width}}/{total}  loss {loss:.4f}  validation {score:6.2f}  "
            f"best {state['best_score']:6.2f} (step {state['best_step']})  {examples_per_second(state):.1f} ex/s")
    last = state["history"][-1] if state.get("history") else {}
    if "routing_entropy" in last:  # routed methods: is the router still routing?
        line += f"  routing entropy {last['routing_entropy']:.2f}, collapsed layers {last['collapsed_layers']}"
    return line


def finish(model: PromptedModel, p: Prepared, state: dict[str, Any], out: Path, wall_origin: float | None = None) -> dict[str, Any]:
    """Reload the best checkpoint, score test (validation was scored when it was best), write metrics.json.

    ``wall_origin``: the ``time.perf_counter()`` the run started at (shifted back by earlier sessions' time on resume).
    """
    cfg = p.config
    model.load_adapter(out / "best")
    validation = state["best_result"]
    test = evaluate(model, p.encoder, p.specs, p.test_sets, cfg.eval_batch_size, cfg.eval_mode) if p.test_sets else None
    report = model.parameter_report()
    train_seconds = state.get("train_seconds", 0.0)
    metrics = {
        "method": cfg.method,
        "model": cfg.model,
        "format": p.encoder.form,
        "seed": cfg.seed,
        "lr": cfg.lr if cfg.lr is not None else cfg.default_lr(),
        "tasks": validation["tasks"],
        "average": validation["average"],
        "majority": majority_baseline(p),
        "test": test,
        "routing": validation.get("routing"),
        "best_step": state["best_step"],
        "steps": state["step"],
        "history": state["history"],
        "trainable_params": report["trainable"],
        "trainable_percent": report["trainable_percent"],
        "activated_prompt_tokens": report["activated_prompt_tokens"],
        "parameters": report,
        "truncated": p.truncated,
        "train_examples": len(p.train),
        "timing": {  # measurements: the only part of metrics.json that differs between identical runs
            "train_seconds": round(train_seconds, 3),  # forward/backward/update only
            "train_examples_per_second": round(examples_per_second(state), 2),
            "examples_seen": state.get("examples_seen", 0),
            "eval_seconds": round(state.get("eval_seconds", 0.0), 3),  # one pass over validation
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "train_seconds_at_eval": state.get("eval_train_seconds", []),  # [step, train seconds] per evaluation
        },
    }
    if wall_origin is not None:  # everything since train() began: loading, tokenising, training, evaluating, saving
        metrics["timing"]["wall_seconds"] = round(time.perf_counter() - wall_origin, 3)
    atomic_write(out / METRICS, lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
    (out / INCOMPLETE).unlink(missing_ok=True)
    return metrics


def majority_baseline(p: Prepared) -> dict[str, float]:
    """Score of always predicting the most frequent training label, per classification task."""
    from collections import Counter

    from mept.evaluate import score

    out = {}
    for task, features in p.eval_sets.items():
        if p.specs[task].kind == "generation":
            continue
        train_labels = [f.example.label for f in p.train if f.example.task == task]
        pool = train_labels or [f.example.label for f in features]
        label = Counter(pool).most_common(1)[0][0]
        out[task] = score(p.specs[task], features, [label] * len(features))["score"]
    return out


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Single run, or a learning-rate grid and/or several seeds, aggregated into one metrics.json."""
    grid = cfg.lr_grid
    if not grid and not cfg.seeds:
        return train(cfg, resume=resume)
    out = Path(cfg.output)
    from accelerate import PartialState

    processes = PartialState(cpu=not torch.cuda.is_available())
    if processes.is_main_process:  # one process owns the run folder (several under `accelerate launch`)
        prepare_output(out, cfg, resume)
    processes.wait_for_everyone()
    lr = cfg.lr
    grid_results = []
    if grid:
        for value in grid:
            sub = replace(cfg, lr=value, lr_grid=None, seeds=None, output=str(out / f"lr-{value:g}"), overwrite=True)
            grid_results.append({"lr": value, "average": train(sub)["average"]})
        lr = max(grid_results, key=lambda r: r["average"])["lr"]
    seeds = cfg.seeds or [cfg.seed]
    runs = []
    for seed in seeds:
        sub = replace(cfg, lr=lr, lr_grid=None, seeds=None, seed=seed, output=str(out / f"seed-{seed}"), overwrite=True)
        runs.append(train(sub))
    summary = aggregate(runs)
    summary.update({"lr": lr, "lr_grid": grid_results, "seeds": seeds})
    atomic_write(out / METRICS, lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
    return summary


def routing_summary(health: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few routing-health numbers worth keeping per seed."""
    if not health:
        return None
    keys = ("collapsed_layers", "layers_with_3_experts", "mean_entropy", "max_pathway_cosine")
    return {k: health[k] for k in keys}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds, per task and for the average (the paper reports 3 runs)."""

    def mean_std(values: list[float]) -> dict[str, float]:
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

    tasks = runs[0]["tasks"]
    return {
        "method": runs[0]["method"],
        "model": runs[0]["model"],
        "tasks": {t: mean_std([r["tasks"][t]["score"] for r in runs]) for t in tasks},
        "average": mean_std([r["average"] for r in runs]),
        "trainable_percent": runs[0]["trainable_percent"],
        "activated_prompt_tokens": runs[0]["activated_prompt_tokens"],
        "runs": [{"seed": r["seed"], "average": r["average"], "tasks": {t: r["tasks"][t]["score"] for t in tasks},
                  "routing": routing_summary(r.get("routing"))} for r in runs],
    }
