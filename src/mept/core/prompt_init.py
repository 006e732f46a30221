"""Initialisation of prompt tensors.

Done explicitly on our own parameters at construction (never through
``from_pretrained``'s ``_init_weights``, which is how the authors' "xavier"
silently did nothing). Each prompt is an (m, d) matrix: fan_in = d, fan_out = m.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from mept.core.adapter_format import WEIGHTS_NAME, UnreadableWeights, read_adapter_weights
from mept.core.config import REPLACED_INITS
from mept.errors import MeptError
from mept.files.run_names import BEST, SEED_PREFIX


@torch.no_grad()
def init_prompt_(tensor: torch.Tensor, scheme: str) -> torch.Tensor:
    """Fill ``tensor`` (..., m, d) in place with the named scheme."""
    m, d = tensor.shape[-2], tensor.shape[-1]
    if scheme == "xavier_normal":
        return tensor.normal_(0.0, math.sqrt(2.0 / (m + d)))
    if scheme in REPLACED_INITS:
        # drawn as Xavier normal now; the source's values replace them once the source is at hand
        # (fill_rows_ / copy_rows_, called by the method or by prepare_run for the training text)
        return tensor.normal_(0.0, math.sqrt(2.0 / (m + d)))
    if scheme == "he_normal":
        return tensor.normal_(0.0, math.sqrt(2.0 / d))
    if scheme == "vpt_uniform":
        # VPT/VFPT: uniform(+-sqrt(6 / (3 * 16 * 16 + d))), patch size 16.
        bound = math.sqrt(6.0 / (3 * 16 * 16 + d))
        return tensor.uniform_(-bound, bound)
    raise ValueError(f"unknown init scheme {scheme!r}")


@torch.no_grad()
def fill_rows_(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Fill every prompt of ``tensor`` (..., m, d) with consecutive rows of ``rows`` (T, d), cycling.

    Prompt n (over the flattened leading dims) gets rows ``n*m .. n*m+m-1`` (mod T): with enough
    text, each expert starts from a different window of it.
    """
    d = tensor.shape[-1]
    if rows.ndim != 2 or rows.shape[1] != d or rows.shape[0] == 0:
        raise MeptError(f"initialisation rows must be (T, {d}) with T > 0, got {tuple(rows.shape)}")
    count = tensor.numel() // d
    index = torch.arange(count, device=rows.device) % rows.shape[0]
    tensor.copy_(rows.index_select(0, index).view(tensor.shape).to(tensor.dtype))
    return tensor


@torch.no_grad()
def sample_rows_(tensor: torch.Tensor, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fill every row of ``tensor`` (..., d) with a row of ``rows`` (N, d) drawn at random (with replacement)."""
    d = tensor.shape[-1]
    if rows.ndim != 2 or rows.shape[1] != d or rows.shape[0] == 0:
        raise MeptError(f"initialisation rows must be (N, {d}) with N > 0, got {tuple(rows.shape)}")
    pick = torch.randint(0, rows.shape[0], (tensor.numel() // d,), generator=generator)
    tensor.copy_(rows[pick.to(rows.device)].view(tensor.shape).to(tensor.dtype))
    return tensor


@torch.no_grad()
def copy_rows_(tensor: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """Every (m, d) prompt of ``tensor`` (..., m, d) becomes ``prompt`` (m', d): its first m rows, cycled if m' < m."""
    m = tensor.shape[-2]
    rows = prompt[torch.arange(m, device=prompt.device) % prompt.shape[0]]  # (m, d)
    tensor.copy_(rows.to(tensor.dtype).expand_as(tensor))
    return tensor


def read_prompt_source(path: str | Path, flag: str = "init_from") -> dict[str, torch.Tensor]:
    """The ``method.*`` tensors of a saved adapter: an adapter folder, a run folder (its ``best/``) or a file.

    ``flag`` is the setting or option the path came from, so that a refusal names what the user typed
    (``init_from`` for a method's config; a script passes its own flag).
    """
    path = Path(path)
    candidates = [path, path / WEIGHTS_NAME, path / BEST / WEIGHTS_NAME]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        seeds = sorted(path.glob(f"{SEED_PREFIX}*/{BEST}/{WEIGHTS_NAME}")) if path.is_dir() else []
        hint = f"; it holds seeds, point at one, e.g. {seeds[0].parent.parent}" if seeds else ""
        raise MeptError(f"{flag}: {path} holds no adapter_model.safetensors (an adapter or run folder){hint}")
    try:
        state = read_adapter_weights(found)
    except UnreadableWeights as exc:
        raise MeptError(f"{flag}: {found} is not a mept adapter (not a safetensors file: {exc.detail}); point at "
                        f"a trained adapter or run folder") from None
    return {k[len("method."):]: v for k, v in state.items() if k.startswith("method.")}


def source_prompts(source: dict[str, torch.Tensor], layers: int, hidden: int) -> torch.Tensor:
    """One (m', d) prompt per target layer from a saved adapter: (layers, m', d).

    A deep adapter (P-Tuning v2, VFPT) with as many layers gives each layer its own; a one-layer
    one (prompt tuning) gives its prompt to every layer.
    """
    prompts = source.get("prompts")
    if prompts is None:
        raise MeptError(f"init_from: the source adapter has no per-layer prompts (tensors: {', '.join(source)}); "
                        "use a prompt_tuning, ptuning_v2, vfpt or (for MEPT) a mept adapter")
    if prompts.shape[-1] != hidden:
        raise MeptError(f"init_from: the source's prompts are {prompts.shape[-1]} wide, this backbone {hidden}")
    if prompts.shape[0] not in (1, layers):
        raise MeptError(f"init_from: the source prompts {prompts.shape[0]} layers, this method {layers}")
    return prompts.expand(layers, -1, -1) if prompts.shape[0] == 1 else prompts
