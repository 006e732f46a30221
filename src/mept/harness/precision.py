"""Which precision a run computes in: ``--mixed-precision auto`` (the default), ``no``, ``bf16``, ``fp16``.

``auto`` is bf16 where the hardware computes bf16 natively and fp32 everywhere else, because bf16
that is emulated is not a little slower but many times slower: on this project's AMD EPYC machine
(AVX2, no avx512_bf16) a MiniLM MEPT training step under bf16 autocast took 14x the CPU time of
fp32 (``benchmarks/speed.py --precision``, ``benchmarks/studies/precision.md``). Native means:

- a CUDA GPU that reports bf16 support (``torch.cuda.is_bf16_supported()``: Ampere and newer);
- a CPU whose flags include ``avx512_bf16`` or ``amx_bf16`` (Cooper Lake, Sapphire Rapids and
  newer, AMD Zen 4 and newer), unless oneDNN is capped below its bf16 ISA with
  ``ONEDNN_MAX_CPU_ISA`` (the documented switch; it is also how the fallback is forced for a test).

What is bf16 and what stays fp32 (our choice): the frozen backbone's matrix products run under
``torch.autocast(bfloat16)``, over the backbone's fp32 weights; prompts, routers and the head keep
fp32 master weights and fp32 optimizer state (autocast never changes a parameter); the router
reads its pooled input in fp32 and forms its softmax in fp32 (:meth:`mept.core.routing.Router.normalize_input`
casts, and the softmax is taken of fp32 logits), and the loss is cross-entropy of fp32 logits.
Storing the frozen weights themselves in bf16 (half the memory, no casts per forward) was measured
beside autocast; see ``benchmarks/studies/precision.md`` for why it is not the default.

Every forward of a run -- training, validation, the final test, ``mept eval``, ``mept predict``,
``mept analyze`` -- runs in the precision the run ran in (``run_config.json``'s
``mixed_precision_ran``), so a score read back from a run folder is the score the run reported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal

import torch

from mept.errors import MeptError

Precision = Literal["auto", "no", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "no", "bf16", "fp16")
# oneDNN ISA names at or above which bf16 is native on x86 (oneDNN's dnnl_cpu_isa_t order)
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "DEFAULT", "ALL")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is not there)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: str = "cpu") -> tuple[bool, str]:
    """(whether ``device`` computes bf16 natively, the reason in words)."""
    if device == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
        return ok, f"{name} {'supports' if ok else 'does not support'} bf16"
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap and cap not in _BF16_ISAS:
        return False, f"ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below its bf16 instructions"
    have = sorted(set(_CPU_BF16_FLAGS) & cpu_flags())
    if have:
        return True, f"the CPU has {', '.join(have)}"
    return False, "the CPU has no avx512_bf16 or amx_bf16: bf16 would be emulated, many times slower than fp32"


def resolve_precision(asked: str, device: str | None = None) -> tuple[str, str]:
    """``--mixed-precision`` as asked -> (what runs: "no" | "bf16" | "fp16", why)."""
    if asked not in PRECISIONS:
        raise MeptError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {asked!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if asked == "fp16" and device != "cuda":  # Accelerate would silently ignore it
        raise MeptError("--mixed-precision fp16 needs a CUDA GPU; on CPU use bf16, no, or auto")
    if asked != "auto":
        return asked, "asked for"
    ok, why = native_bf16(device)
    return ("bf16" if ok else "no"), f"auto: {why}"


def precision_record(asked: str, ran: str | None) -> dict[str, str | None]:
    """What ``metrics.json`` says of a run's precision: asked, ran, and why."""
    why = "asked for" if asked != "auto" else "auto: " + native_bf16("cuda" if torch.cuda.is_available() else "cpu")[1]
    return {"asked": asked, "ran": ran, "computed_in": describe(ran or "no"), "why": why}


def describe(ran: str) -> str:
    """How a precision reads in a summary line."""
    return {"no": "fp32", "bf16": "bf16 autocast (fp32 weights, prompts, routers, head)",
            "fp16": "fp16 autocast (fp32 weights, prompts, routers, head)"}.get(ran, ran)


@contextlib.contextmanager
def autocast(ran: str | None, device: torch.device | str | None = None) -> Iterator[None]:
    """The forward precision of a run that ran in ``ran`` (None or "no": fp32, nothing changes)."""
    if ran in (None, "no"):
        yield
        return
    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    with torch.autocast(kind, dtype=torch.bfloat16 if ran == "bf16" else torch.float16):
        yield
