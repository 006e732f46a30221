"""The one validator of a resume state: every field of a checkpoint's trainer state, before any of it is used.

A checkpoint (:mod:`mept.harness.checkpoint`) holds ``trainer_state.json`` (step, best score, history,
optimizer groups, scheduler, RNG) and ``trainer_state.safetensors`` (optimizer moments, RNG
tensors). Used as read, an edited or damaged one went wrong far from its cause: ``step: -5``
trained 5 extra steps, ``best_score: NaN`` was never beaten (every later checkpoint lost), a
truncated tensor file was a safetensors crash, edited ``optimizer_groups`` a torch error.
:func:`read_resume_state` checks types, ranges, finiteness, the tensor file's completeness and the
optimizer groups against the optimizer being resumed, and refuses with one line naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mept.errors import MeptError, exception_line
from mept.files.file_limits import read_json_object

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


def _fail(path: Path, problem: str) -> MeptError:
    return MeptError(f"{path}: {problem}; the checkpoint is damaged or was edited, so the run cannot continue from "
                     f"it (restore the checkpoint, or train again into another --output)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_resume_state(folder: Path, optimizer: torch.optim.Optimizer, scheduler: Any,
                      total: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of the checkpoint in ``folder``, every part checked; ``total``: the run's step count."""
    js, ts = Path(folder) / STATE_JSON, Path(folder) / STATE_TENSORS
    meta = read_json_object(js)
    check_progress(js, meta, total)
    check_optimizer_groups(js, meta.get("optimizer_groups"), optimizer)
    check_scheduler(js, meta.get("scheduler"), scheduler, meta["step"])
    rng = meta.get("rng")
    if not (isinstance(rng, dict) and isinstance(rng.get("python"), list) and isinstance(rng.get("numpy"), list)
            and len(rng["numpy"]) == 5):
        raise _fail(js, "its 'rng' entry is not the saved random-number state")
    tensors = read_state_tensors(ts)
    check_optimizer_tensors(ts, tensors, optimizer)
    return tensors, meta


def check_progress(path: Path, meta: dict[str, Any], total: int | None) -> None:
    """Step, timings, best score and history: types, ranges and finite values."""
    step = meta.get("step")
    if not _int(step) or step < 0 or (total is not None and step > total):
        bound = f" and at most the run's {total} steps" if total is not None else ""
        raise _fail(path, f"'step' must be a whole number >= 0{bound}, got {step!r}")
    for key in ("train_seconds", "wall_seconds", "eval_seconds"):
        if key in meta and not (_number(meta[key]) and meta[key] >= 0):
            raise _fail(path, f"{key!r} must be a finite number >= 0, got {meta[key]!r}")
    if "examples_seen" in meta and not (_int(meta["examples_seen"]) and meta["examples_seen"] >= 0):
        raise _fail(path, f"'examples_seen' must be a whole number >= 0, got {meta['examples_seen']!r}")
    best, best_step = meta.get("best_score"), meta.get("best_step")
    if (best is None) != (best_step is None):
        raise _fail(path, f"'best_score' ({best!r}) and 'best_step' ({best_step!r}) must be both set or both null")
    if best is not None:
        if not _number(best):
            raise _fail(path, f"'best_score' must be a finite number, got {best!r}")
        if not (_int(best_step) and 1 <= best_step <= step):
            raise _fail(path, f"'best_step' must be a step between 1 and 'step' ({step}), got {best_step!r}")
        if not isinstance(meta.get("best_result"), dict):
            raise _fail(path, "'best_result' (the best checkpoint's validation scores) is missing")
    history = meta.get("history")
    if not isinstance(history, list):
        raise _fail(path, f"'history' must be a list, got {type(history).__name__}")
    for entry in history:
        ok = (isinstance(entry, dict) and _int(entry.get("step")) and 1 <= entry["step"] <= step
              and _number(entry.get("loss")) and _number(entry.get("validation")))
        if not ok:
            raise _fail(path, f"'history' holds an entry that is not a step's loss and validation score: "
                              f"{str(entry)[:80]}")


def check_optimizer_groups(path: Path, saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """The saved parameter groups must be the resumed optimizer's: same count, parameters and settings."""
    current = optimizer.state_dict()["param_groups"]
    if not isinstance(saved, list) or len(saved) != len(current):
        count = len(saved) if isinstance(saved, list) else type(saved).__name__
        raise _fail(path, f"'optimizer_groups' has {count} group(s), the run's optimizer {len(current)}")
    for i, (got, want) in enumerate(zip(saved, current)):
        if not isinstance(got, dict) or set(got) != set(want):
            keys = sorted(set(got) ^ set(want)) if isinstance(got, dict) else type(got).__name__
            raise _fail(path, f"'optimizer_groups' group {i} does not have the optimizer's settings (differs in {keys})")
        if got["params"] != want["params"]:
            raise _fail(path, f"'optimizer_groups' group {i} lists parameters {str(got['params'])[:60]}, the run's "
                              f"optimizer {str(want['params'])[:60]}")
        for key, value in want.items():
            value_got = got[key]
            if key == "params":
                continue
            if isinstance(value, bool) or value is None:
                ok = value_got is None or isinstance(value_got, bool)
            elif isinstance(value, (int, float)):
                ok = _number(value_got) and value_got >= 0
            elif isinstance(value, (list, tuple)):
                ok = isinstance(value_got, list) and len(value_got) == len(value) and all(_number(v) for v in value_got)
            else:
                ok = type(value_got) is type(value)
            if not ok:
                raise _fail(path, f"'optimizer_groups' group {i} has {key} = {value_got!r}")


def check_scheduler(path: Path, saved: Any, scheduler: Any, step: int) -> None:
    """The learning-rate schedule's state: the run's keys, one rate per group, at the saved step."""
    want = scheduler.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(want):
        raise _fail(path, "its 'scheduler' entry is not this run's learning-rate schedule")
    if saved.get("last_epoch") != step:
        raise _fail(path, f"the schedule is at step {saved.get('last_epoch')!r} but 'step' is {step}")
    for key in ("base_lrs", "_last_lr"):
        value = saved.get(key)
        if key in want and not (isinstance(value, list) and len(value) == len(want[key])
                                and all(_number(v) and v >= 0 for v in value)):
            raise _fail(path, f"the schedule's {key} is {str(value)[:60]}")


def read_state_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensor file, complete and readable, with the RNG state in it."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise _fail(path, "the file is missing") from None
    except Exception as exc:  # safetensors' own SafetensorError for a truncated or garbled file
        detail = exception_line(exc)
        raise _fail(path, f"not a readable safetensors file ({detail}; truncated?)") from None
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise _fail(path, "the torch random-number state (rng.torch) is missing")
    return tensors


def check_optimizer_tensors(path: Path, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """Optimizer moments: for parameters the optimizer has, of their shapes, floating point and finite,
    and the same set of entries for every parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    found: dict[int, set[str]] = {}
    for key, value in tensors.items():
        if not key.startswith("optimizer."):
            continue
        parts = key.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
            raise _fail(path, f"tensor {key} names no parameter of the run's optimizer ({len(params)} parameters)")
        idx, name = int(parts[1]), parts[2]
        found.setdefault(idx, set()).add(name)
        if not value.is_floating_point():
            raise _fail(path, f"tensor {key} is {value.dtype}, not floating point")
        if not torch.isfinite(value).all():
            raise _fail(path, f"tensor {key} holds NaN or infinite values")
        if value.dim() and tuple(value.shape) != tuple(params[idx].shape):
            raise _fail(path, f"tensor {key} has shape {tuple(value.shape)}, its parameter {tuple(params[idx].shape)}")
    kinds = {frozenset(names) for names in found.values()}
    if len(kinds) > 1:
        first, other = sorted(kinds, key=len)[:2]
        raise _fail(path, f"the optimizer state is incomplete (some parameters have {sorted(first)}, others "
                          f"{sorted(other)})")
