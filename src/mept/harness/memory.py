"""Memory: estimated before a model is allocated, and given back between the phases of a run.

Before: :func:`footprint` counts a model's parameters on torch's ``meta`` device (shapes only, no
memory) and :func:`check_fits` refuses what cannot fit, with the figure -- ``--experts 100000``
or ``mept params --num-labels 100000000`` used to allocate until the kernel killed the process.

Between phases: tokenising a long-text CSV and scoring validation batches allocate many short-lived objects
and tensors; once freed, glibc keeps most of those pages in the process's heap, so the resident
set stays high and the training steps that follow add their activations on top of it. Collecting
cycles and calling ``malloc_trim(0)`` after each phase returns the free pages, so peak memory is
the largest phase rather than the phases stacked (benchmarks/studies/memory.md). Numbers do not
change: nothing live is touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mept.core.task_types import TaskType
from mept.errors import MeptError
from mept.model.prompted import get_model


@lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc, where it is the allocator (Linux); None elsewhere (macOS, Windows, musl without malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_memory() -> None:
    """Free unreachable objects, then hand the heap's free pages back to the OS (a no-op without glibc)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


# --- the estimate before allocation -------------------------------------------------------------

# bytes per trained parameter beyond its weight: its gradient and AdamW's two moments, all fp32
TRAINING_BYTES = 12
WEIGHT_BYTES = {None: 4, "8bit": 1, "4bit": 0.5}  # a frozen weight, by --quantize (trained ones stay fp32)


@dataclass(frozen=True)
class Footprint:
    """What a model will hold, counted on the ``meta`` device (no memory is allocated to count it)."""

    params: int  # every parameter: backbone, head, method
    trainable: int
    slots: int  # prompt positions the method adds
    max_positions: int | None  # the backbone's position limit (None: none)

    def bytes(self, quantize: str | None = None) -> int:
        """Weights, plus gradients and AdamW's moments of what trains (activations come on top)."""
        return int((self.params - self.trainable) * WEIGHT_BYTES[quantize] + self.trainable * (4 + TRAINING_BYTES))


def footprint(config: Any, form: str, method_cfg: Any, num_labels: int | None = None, **model_kwargs: Any) -> Footprint:
    """Count the parameters of ``method_cfg`` on a backbone of ``config`` for ``form``, without allocating.

    The backbone and method are built on torch's ``meta`` device (shapes only). A head of
    ``num_labels`` classes is counted from two small builds (2 and 3 classes): a config with 10^8
    classes would itself hold a 10^8-entry label map.
    """
    import copy
    import dataclasses

    import torch
    import transformers

    auto = getattr(transformers, TaskType.parse(form).auto_class)
    if dataclasses.is_dataclass(method_cfg) and getattr(method_cfg, "init", None) == "previous_knowledge":
        method_cfg = dataclasses.replace(method_cfg, init="xavier_normal", init_from=None)  # same shapes, no file read

    def build(labels: int | None) -> tuple[int, int, int]:
        cfg = copy.deepcopy(config)
        if labels is not None:
            cfg.num_labels = labels
        with torch.device("meta"):
            model = get_model(auto.from_config(cfg), method_cfg, **model_kwargs)
        params = list(model.parameters())
        return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad), \
            getattr(model, "num_slots", 0)

    heads = form in (TaskType.CLS, TaskType.IMAGE_CLS) and num_labels is not None
    total, trained, slots = build(2 if heads else None)
    if heads and num_labels != 2:
        total3, trained3, _ = build(3)
        total += (num_labels - 2) * (total3 - total)
        trained += (num_labels - 2) * (trained3 - trained)
    return Footprint(total, trained, slots, getattr(config, "max_position_embeddings", None))


def available_bytes() -> dict[str, int]:
    """Memory a new allocation can get: ``cpu`` (what the kernel reports available, or the cgroup's limit
    less its use if lower), and ``gpu`` (free memory of the current CUDA device) when there is one."""
    out: dict[str, int] = {}
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                out["cpu"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            free = int(open(limit).read().strip()) - int(open(used).read().strip())
        except (OSError, ValueError):  # no such cgroup, or "max"
            continue
        out["cpu"] = min(out.get("cpu", free), free)
    import torch

    if torch.cuda.is_available():
        out["gpu"] = int(torch.cuda.mem_get_info()[0])
    return out


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(fp: Footprint, what: str, quantize: str | None = None, fix: str = "") -> None:
    """Refuse a model that cannot fit the memory available (with both figures), before it is allocated.

    On a GPU the model is loaded on the CPU first (weights), then trained on the GPU (everything).
    """
    need = fp.bytes(quantize)
    have = available_bytes()
    device_need = {"cpu": fp.params * 4 if "gpu" in have else need, "gpu": need}
    for device, free in have.items():
        if device_need[device] > free:
            raise MeptError(
                f"{what} needs about {gib(device_need[device])} of {device.upper()} memory ({fp.params:,} parameters, "
                f"{fp.trainable:,} trained: weights{', gradients and AdamW moments' if device_need[device] == need else ''}"
                f", fp32), but {gib(free)} is available{'; ' + fix if fix else ''}")
