"""Training: one linear loop, from a :class:`TrainConfig` to ``metrics.json``.

The harness follows the data one way: :mod:`mept.harness.prepare_run` (config -> examples -> features,
label space, model), then this module's ``train`` loop (with the step pieces of
:mod:`mept.harness.train_loop`), then :mod:`mept.harness.run_report` (metrics, labels, aggregates). ``train`` runs
the loop with Accelerate (CPU, one GPU, or ``accelerate launch`` on many), checkpointing every
``save_every`` steps so ``--resume`` after a crash ends with the same metrics as an uninterrupted
run; ``run`` adds seeds and the learning-rate grid on top. The run folder itself (the lock,
``--overwrite``, reading a run back) is :mod:`mept.harness.run_folder`.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mept.errors import MeptError
from mept.files.file_limits import read_json_object
from mept.files.ownership import check_writable
from mept.files.run_names import LR_PREFIX, SEARCH_PREFIX
from mept.harness.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from mept.harness.evaluate import evaluate, to_device
from mept.harness.identity import write_identity
from mept.harness.memory import release_memory
from mept.harness.precision import resolve_precision
from mept.harness.prepare_run import Prepared, prepare, seed_everything, set_determinism
from mept.harness.progress import Progress, progress_lines
from mept.harness.run_folder import RunFolder, output_lock, settle
from mept.harness.run_report import aggregate, eval_line, finish, save_label_space
from mept.harness.tracking import Tracking, check_trackers
from mept.harness.train_config import TrainConfig
from mept.harness.train_loop import accumulate_gradients, epoch_batches, micro_batches
from mept.harness.train_state import TrainState
from mept.methods.mept import PAPER_SEARCH
from mept.model.adapter import AdapterModel


def with_precision(cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """``cfg`` with ``mixed_precision_ran`` set, and why: a run that has one (resumed, a seed of a grid) keeps it."""
    if cfg.mixed_precision_ran is not None:
        return cfg, "the run's own" if cfg.mixed_precision == "auto" else "asked for"
    ran, why = resolve_precision(cfg.mixed_precision)
    return replace(cfg, mixed_precision_ran=ran), why


def forget_other_precision(ran: str) -> None:
    """Let one process train runs of different precisions (the Python API, tests): Accelerate keeps its
    first ``mixed_precision`` for the life of a process and refuses another. In a single process the
    shared state holds nothing else of ours, so it is reset; under ``accelerate launch`` it is left alone
    (every run there is launched with one precision)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("num_processes", 1) == 1 and str(state.get("_mixed_precision", ran)) != ran:
        AcceleratorState._reset_state()


def train(cfg: TrainConfig, resume: bool = False, prepared: Prepared | None = None) -> dict[str, Any]:
    """Train one run (one seed, one lr) and write ``metrics.json`` in ``cfg.output``."""
    from accelerate import Accelerator

    wall_origin = time.perf_counter()  # wall time counts everything: loading, tokenising, evaluating, saving
    seed_everything(cfg.seed)
    set_determinism(cfg.deterministic)
    out = Path(cfg.output)
    folder = RunFolder(out)
    tracking = Tracking(cfg.report_to, out, cfg.output)  # a tracker that is not installed: refused first
    if resume:
        check_writable(out)
    else:
        folder.claim(cfg.overwrite)  # before the model loads, not after
    p = prepared or prepare(cfg)
    release_memory()  # tokenising freed much; hand it back before the training steps add theirs
    # run_config.json records the head eval/predict rebuild
    cfg = replace(cfg, head_pooling=p.model.head_pooling, head=p.model.head)
    cfg, why = with_precision(cfg)
    p = replace(p, config=cfg)  # run_report reads the precision (and why) from the prepared run's config
    forget_other_precision(cfg.mixed_precision_ran)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision_ran, cpu=not torch.cuda.is_available(),
                              log_with=tracking.trackers())
    if accelerator.is_main_process:  # one process owns the run folder; the others wait until it is ready
        folder.prepare(cfg, resume)
        save_label_space(out, p)
        write_identity(folder.identity, read_json_object(folder.labels), p.model.backbone)
        folder.incomplete.write_text("training in progress; metrics.json appears when the run ends\n")
    accelerator.wait_for_everyone()
    finished = False
    # no terminal (a log file): a plain progress line every 30 s instead of the bar (mept.harness.progress)
    lines = cfg.progress and accelerator.is_main_process and not sys.stderr.isatty()
    try:
        tracking.start(accelerator, cfg.to_dict())
        with progress_lines(enabled=lines) as progress:
            metrics = _train(cfg, p, out, resume, accelerator, wall_origin, progress, tracking)
        finished = True
    finally:
        tracking.finish(accelerator)
        if accelerator.is_main_process:
            settle(out, finished)
    return metrics


@dataclass
class _Run:
    """What one run's steps and evaluations share, built once by :func:`_train`."""

    cfg: TrainConfig
    p: Prepared
    folder: RunFolder
    accelerator: Any
    model: Any  # as Accelerate wraps it (forward, backward)
    inner: AdapterModel  # the model itself (evaluate, save)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    total: int
    progress: Progress
    tracking: Tracking
    bar: Any = None
    last_checkpoint: str | None = None  # named by the error of a loss that is no longer finite

    def log(self, line: str) -> None:
        (self.bar.write if not self.bar.disable else print)(line)


def _train(cfg: TrainConfig, p: Prepared, out: Path, resume: bool, accelerator: Any, wall_origin: float,
           progress: Progress, tracking: Tracking) -> dict[str, Any]:
    """The loop of :func:`train`, in a folder already prepared (and any old run moved aside)."""
    model = p.model.to(accelerator.device)
    lr = cfg.lr_for(model.spec.hidden_size, model.spec.text_decoder)
    groups = model.param_groups(lr, cfg.head_lr)
    if not groups:
        raise MeptError("nothing to train: prompts, routers and head are all frozen")
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    lengths = [len(f.input_ids) + len(f.target_ids) for f in p.train]
    steps_per_epoch = len(epoch_batches(lengths, cfg.batch_size, cfg.seed, 0))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    # Here, not at the top: transformers' optimization module loads its Trainer utilities, 3.9 s of start-up
    # for every mept command (`python -X importtime -c "import mept.cli"`: transformers.trainer_utils 3,206 ms).
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    run = _Run(cfg, p, RunFolder(out), accelerator, model, accelerator.unwrap_model(model), optimizer, scheduler,
               total, progress, tracking)
    state = TrainState()
    ckpt = run.folder.checkpoint
    if resume and find_checkpoint(ckpt) is not None:
        state = load_checkpoint(ckpt, run.inner, optimizer, scheduler, total)
        accelerator.print(f"resumed from step {state.step}")
        wall_origin -= state.wall_seconds  # earlier sessions' wall time, up to their last checkpoint
    eval_every = cfg.eval_every or steps_per_epoch
    # a progress bar only on a terminal: in a log file it is noise, the per-evaluation lines say enough
    show_bar = cfg.progress and accelerator.is_main_process and sys.stderr.isatty()
    run.bar = tqdm(total=total, initial=state.step, desc="train", disable=not show_bar)
    progress.begin(total, state.step)
    plan, plan_epoch = [], -1
    run.last_checkpoint = str(ckpt) if find_checkpoint(ckpt) else None
    while state.step < total:
        epoch, index = divmod(state.step, steps_per_epoch)
        if plan_epoch != epoch:
            plan, plan_epoch = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch), epoch
        loss = _step(run, state, plan[index])
        _evaluate_and_save(run, state, loss, evaluate_now=state.step % eval_every == 0 or state.step == total,
                           wall_origin=wall_origin)
    run.bar.close()
    progress.phase = "scoring the best checkpoint"
    accelerator.wait_for_everyone()  # every process reloads the best adapter the main one wrote
    return finish(run.inner, p, state, out, wall_origin)


def _step(run: _Run, state: TrainState, batch: list[int]) -> float:
    """One optimizer step on ``batch`` (example indices; each process takes its share); its loss."""
    cfg, p, accelerator = run.cfg, run.p, run.accelerator
    step_start = time.perf_counter()  # train-only time: batch, forward, backward, update
    chosen = batch[accelerator.process_index::accelerator.num_processes]
    idle = not chosen  # a batch smaller than the process count: this process runs one example, weighted 0
    parts = micro_batches(chosen or batch[:1], cfg.gradient_accumulation_steps)
    batches = [to_device(p.encoder.collate([p.train[i] for i in part], train=True), accelerator.device) for part in parts]
    run.model.train()
    loss = accumulate_gradients(run.model, run.inner, batches, p.encoder.form, accelerator, idle)
    if not torch.isfinite(loss):
        run.bar.close()
        where = f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint was written yet"
        raise MeptError(f"loss became {loss.item()} at step {state.step + 1}; stopped ({where}); try a lower --lr")
    if cfg.max_grad_norm is not None:
        accelerator.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad()
    step_loss = loss.item()  # also waits for the device, so the step's time is real
    state.record_step(step_start, time.perf_counter(), len(batch))
    run.bar.update(1)
    run.bar.set_postfix(loss=f"{step_loss:.4f}", ex_s=f"{state.examples_per_second:.1f}")
    run.progress.update(state.step, step_loss, state.examples_per_second)
    run.tracking.log_step(accelerator, state.step, step_loss, run.optimizer)
    return step_loss


def _evaluate_and_save(run: _Run, state: TrainState, loss: float, evaluate_now: bool, wall_origin: float) -> None:
    """After a step: score validation when it is due (a new best writes ``best/``), checkpoint when due."""
    cfg, p, main = run.cfg, run.p, run.accelerator.is_main_process
    if evaluate_now:
        t0 = time.perf_counter()
        run.progress.phase = "evaluating"
        result = evaluate(run.inner, p.encoder, p.specs, p.eval_sets, cfg.eval_batch_size, cfg.eval_mode,
                          metric=cfg.metric, precision=cfg.mixed_precision_ran)
        run.progress.phase = ""
        release_memory()
        best = state.record_evaluation(loss, result, time.perf_counter() - t0)
        run.tracking.log_evaluation(run.accelerator, state.step, result)
        if best and main:
            run.inner.save_pretrained(run.folder.best)
        if main:
            run.log(eval_line(state.step, run.total, loss, result["average"], state))
    if main and (state.step % cfg.save_every == 0 or state.step == run.total):
        state.wall_seconds = time.perf_counter() - wall_origin
        save_checkpoint(run.folder.checkpoint, run.inner, run.optimizer, run.scheduler, state)
        run.last_checkpoint = str(run.folder.checkpoint)
        settle(run.folder.path, True)  # resumable now: a run that --overwrite moved aside is not needed any more


def run(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Single run, or a learning-rate grid and/or several seeds, aggregated into one metrics.json.

    The output folder is locked for the whole run (:func:`mept.harness.run_folder.output_lock`): a second
    writer is refused instead of mixing its files with this run's.
    """
    from accelerate import PartialState

    out = Path(cfg.output)
    check_trackers(cfg.report_to)  # before anything is written, and before any seed of a grid starts
    if resume:
        check_writable(out)
    else:
        RunFolder(out).claim(cfg.overwrite)  # before the model loads: --overwrite only ever replaces a mept run
    cfg, _ = with_precision(cfg)  # before the seeds and the grid: every part runs, and records, the same one
    processes = PartialState(cpu=not torch.cuda.is_available())
    with output_lock(out) if processes.is_main_process else contextlib.nullcontext():
        if not search_points(cfg) and not cfg.seeds:
            return train(cfg, resume=resume)
        if processes.is_main_process:  # one process owns the run folder (several under `accelerate launch`)
            RunFolder(out).prepare(cfg, resume)
        processes.wait_for_everyone()
        finished = False
        try:
            summary = _run_grid(cfg, out, resume)
            finished = True
        finally:
            if processes.is_main_process:
                settle(out, finished)
        return summary


def search_points(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The settings a run tries on validation before its seeds train, each a dict of TrainConfig fields.

    ``--lr-grid``: one point per lr. ``--paper-search``: the paper's m x N_r grid
    (:data:`mept.methods.mept.PAPER_SEARCH`) times the lr grid (or the one --lr). No search: none.
    """
    lrs = [{"lr": value} for value in cfg.lr_grid or []]
    if not cfg.paper_search:
        return lrs
    return [{"prompt_length": m, "experts": n, **lr} for m in PAPER_SEARCH["prompt_length"]
            for n in PAPER_SEARCH["num_experts"] for lr in lrs or [{}]]


SEARCH_FOLDER_KEYS = {"prompt_length": "m", "experts": "nr", "lr": "lr"}


def point_folder(point: dict[str, Any]) -> str:
    """Where one search point trains: ``lr-X`` for an lr grid, ``search-mM-nrN-lrX`` for the paper's search."""
    if set(point) == {"lr"}:
        return f"{LR_PREFIX}{point['lr']:g}"
    return SEARCH_PREFIX + "-".join(f"{SEARCH_FOLDER_KEYS[k]}{v:g}" for k, v in point.items())


def _run_grid(cfg: TrainConfig, out: Path, resume: bool) -> dict[str, Any]:
    """Search (each point once, with ``cfg.seed``, scored on validation only), then every seed with the choice.

    The best validation average wins (the first point in grid order on a tie); the test split is scored
    only by the seed runs of the chosen setting, so nothing about the test split picks the setting.
    """
    points = search_points(cfg)
    searched = []
    for point in points:
        sub = replace(cfg, **point, lr_grid=None, seeds=None, paper_search=False, score_test=False,
                      output=str(out / point_folder(point)), overwrite=True)
        searched.append({**point, "average": _train_or_resume(sub, resume)["average"]})
    chosen = {k: v for k, v in max(searched, key=lambda r: r["average"]).items() if k != "average"} if searched else {}
    seeds = cfg.seeds or [cfg.seed]
    runs = []
    for seed in seeds:
        sub = replace(cfg, **chosen, lr_grid=None, seeds=None, paper_search=False, seed=seed,
                      output=str(RunFolder(out).seed(seed).path), overwrite=True)
        runs.append(_train_or_resume(sub, resume))
    summary = aggregate(runs)
    lr = chosen.get("lr", runs[0]["lr"])  # a run's own record: the default lr depends on the backbone
    summary.update({"lr": lr, "lr_grid": searched if cfg.lr_grid else [], "seeds": seeds})
    if cfg.paper_search:
        summary["search"] = {
            "what": "the MEPT paper's search (Sec. 4.3: m, N_r; Appendix B.2: lr), every combination",
            "grid": {"prompt_length": list(PAPER_SEARCH["prompt_length"]), "experts": list(PAPER_SEARCH["num_experts"]),
                     "lr": list(cfg.lr_grid) if cfg.lr_grid else [lr]},
            "selected_on": f"validation average ({cfg.metric}), seed {cfg.seed}",
            "results": searched,
            "chosen": {"lr": lr, **chosen},
        }
    RunFolder(out).write_metrics(summary)
    return summary


def _train_or_resume(sub: TrainConfig, resume: bool) -> dict[str, Any]:
    """One part of a grid or multi-seed run; on --resume a finished part is read back, a started one continued."""
    folder = RunFolder(Path(sub.output))
    if resume and folder.metrics.exists():
        return read_json_object(folder.metrics)
    if resume and folder.config.exists():
        return train(replace(sub, overwrite=False), resume=True)
    return train(sub)
