"""Initialisation of prompt tensors.

Done explicitly on our own parameters at construction (never through
``from_pretrained``'s ``_init_weights``, which is how the authors' "xavier"
silently did nothing). Each prompt is an (m, d) matrix: fan_in = d, fan_out = m.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def init_prompt_(tensor: torch.Tensor, scheme: str) -> torch.Tensor:
    """Fill ``tensor`` (..., m, d) in place with the named scheme."""
    m, d = tensor.shape[-2], tensor.shape[-1]
    if scheme == "xavier_normal":
        return tensor.normal_(0.0, math.sqrt(2.0 / (m + d)))
    if scheme == "he_normal":
        return tensor.normal_(0.0, math.sqrt(2.0 / d))
    if scheme == "vpt_uniform":
        # VPT/VFPT: uniform(+-sqrt(6 / (3 * 16 * 16 + d))), patch size 16.
        bound = math.sqrt(6.0 / (3 * 16 * 16 + d))
        return tensor.uniform_(-bound, bound)
    raise ValueError(f"unknown init scheme {scheme!r}")
