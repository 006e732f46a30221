"""Shared timing and memory helpers for the benchmark scripts (not part of the library).

Time: ``time.perf_counter`` (wall) and ``time.process_time`` (CPU) around one
call, median over rounds; configs are run round-robin so machine noise (other
jobs on a shared CPU) hits every config alike. On a loaded shared machine run
with ``--threads 1`` and read the CPU-time columns: they measure the work done.

Memory: ``torch.profiler`` with ``profile_memory=True`` over one step, after
warm-up (so AdamW state already exists). Ops are replayed in start order and
their self allocation (bytes allocated minus freed inside the op) summed; the
running maximum is the *peak memory allocated by torch during the step on top
of what was live before it* -- activations, gradients, temporaries. Weights and
optimizer state that exist before the step are not counted (they are listed as
parameter counts instead). Process RSS is not used: every config lives in one
process and glibc keeps freed pages, so RSS deltas are meaningless per config.
On CUDA, ``torch.cuda.max_memory_allocated`` deltas are used instead.
"""

from __future__ import annotations

import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # before torch: kineto prints a line per profile otherwise

import statistics
import time
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:  # mept is imported where it is used: the timing helpers need only torch
    from mept import PromptedModel
    from mept.core.config import PromptConfig


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call.

    On a shared CPU the wall time includes waiting for other jobs; with
    ``torch.set_num_threads(1)`` the CPU time is the work done, whatever the load
    (with more threads it also counts OpenMP threads spinning at barriers).
    """
    sync()
    w, c = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - w, time.process_time() - c


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def mean_std(values: list[float], digits: int = 2, empty: str = "-") -> str:
    """``mean ± std`` of per-seed scores (std 0 for one seed), or ``empty`` when nothing ran."""
    if not values:
        return empty
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def paired_text(test: dict) -> str:
    """A paired test (``mept.harness.stats.paired_test``) as the tables print it: ``+8.50 (p < 0.001, n = 6)``.

    Three decimals, and ``p < 0.001`` below that: a printed ``p = 0.000`` reads as a p of zero, which no
    finite sample gives.
    """
    p = test["p_two_sided"]
    p_shown = f"p = {p:.3f}" if p >= 0.001 else "p < 0.001"
    return f"{test['mean_diff']:+.2f} ({p_shown}, n = {test['n']})"


def prompted_model(backbone: torch.nn.Module, config: PromptConfig, init_ids: list[list[int]], seed: int = 1) -> PromptedModel:
    """``backbone`` wrapped by ``config`` in eval mode, its prompts drawn as training would draw them.

    A method whose prompts start from the backbone's own hidden states (``wants_state_init``) gets them from
    ``init_ids`` (token ids of training texts), so a script measures the untrained model that ``mept train`` builds,
    not its Xavier draw; one seed fixes both draws so variants compare on the same prompts.
    """
    from types import SimpleNamespace

    import mept
    from mept.harness.prepare_run import init_from_hidden_states

    torch.manual_seed(seed)
    model = mept.get_model(backbone, config).eval()
    if model.wants_state_init:
        init_from_hidden_states(model, [SimpleNamespace(input_ids=ids) for ids in init_ids], seed=seed)
    return model


def peak_step_memory_mb(fn: Callable[[], object]) -> float:
    """Peak bytes torch allocates during ``fn()`` above what was live before it, in MiB."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cum = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        cum += event.self_cpu_memory_usage
        peak = max(peak, cum)
    return peak / 2**20
