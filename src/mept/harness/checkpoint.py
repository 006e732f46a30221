"""Resumable training checkpoints that survive a crash.

A checkpoint folder holds the adapter (``adapter_model.safetensors`` +
``adapter_config.json``) and the trainer state: optimizer tensors and RNG
states in ``trainer_state.safetensors`` (never pickle), everything else
(step, scheduler, best score, history, python/numpy RNG) in
``trainer_state.json``. It is written to a temporary folder and swapped in
with renames, so a SIGKILL at any instant leaves either the previous or the
new checkpoint complete, never a half-written one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from mept.errors import MeptError
from mept.files.atomic_file import naming_full_disk
from mept.harness.resume_state import STATE_JSON, STATE_TENSORS, read_resume_state
from mept.harness.train_state import TrainState
from mept.model.adapter import AdapterModel


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "python": _listify(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    random.setstate(_tupleify(meta["python"]))
    kind, keys, *rest = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


def _listify(x: Any) -> Any:
    return [_listify(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tupleify(x: Any) -> Any:
    return tuple(_tupleify(v) for v in x) if isinstance(x, list) else x


def save_checkpoint(
    folder: Path,
    model: AdapterModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: TrainState,
) -> None:
    """Atomically replace ``folder`` with a checkpoint of the current training state."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, param_state in opt["state"].items():
        for key, value in param_state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optimizer.{idx}.{key}"] = t.detach().cpu().contiguous()
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    with naming_full_disk(tmp / STATE_TENSORS):
        save_file(tensors, str(tmp / STATE_TENSORS))
    meta = {**state.to_json(), "optimizer_groups": opt["param_groups"], "scheduler": scheduler.state_dict(), "rng": rng_meta}
    (tmp / STATE_JSON).write_text(json.dumps(meta))
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the folder, or its ``.old`` twin if a crash hit mid-swap."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / STATE_JSON).exists() and (candidate / STATE_TENSORS).exists():
            return candidate
    return None


def checkpoint_step(folder: Path) -> int | None:
    """The step a checkpoint folder was saved at, or None when its state cannot be read (for reports only)."""
    try:
        step = json.loads((Path(folder) / STATE_JSON).read_text()).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def load_checkpoint(
    folder: Path, model: AdapterModel, optimizer: torch.optim.Optimizer, scheduler: Any, total: int | None = None
) -> TrainState:
    """Restore model, optimizer, scheduler and RNG; return the trainer state (step, best, history).

    The whole state is validated first (:func:`mept.harness.resume_state.read_resume_state`), so a damaged
    or edited checkpoint is one error naming its file, before any of it is used.
    """
    found = find_checkpoint(folder)
    if found is None:
        raise MeptError(f"no resumable checkpoint in {folder}; start without --resume")
    tensors, meta = read_resume_state(found, optimizer, scheduler, total)
    model.load_adapter(found)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("optimizer_groups")})
    scheduler.load_state_dict(meta.pop("scheduler"))
    set_rng_state(tensors, meta.pop("rng"))
    return TrainState.from_json(meta)
