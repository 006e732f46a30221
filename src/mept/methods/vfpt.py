"""VFPT (Zeng et al., NeurIPS 2024): deep prompts, part of them seen through a 2-D Fourier transform.

Before insertion, the first ``floor(m * fourier_fraction)`` rows of each
layer's prompt are replaced by ``Re(FFT_seq(FFT_hidden(P)))`` -- a
parameter-free transform that mixes every prompt entry into every other,
giving the prompts a frequency-domain view. ``fourier_dims`` = ``both``
(the VFPT paper), ``hidden`` or ``sequence`` for the ablation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from mept.core.config import Init, PromptConfig
from mept.core.registry import register_method
from mept.errors import MeptError
from mept.methods.base import DeepPrompts


@dataclass
class VFPTConfig(PromptConfig):
    method = "vfpt"
    fourier_fraction: float = 0.5
    fourier_dims: Literal["both", "hidden", "sequence"] = "both"
    init: Init = "vpt_uniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.fourier_fraction <= 1.0:
            raise MeptError(f"VFPTConfig.fourier_fraction must be in [0, 1], got {self.fourier_fraction!r}")


def fourier_transform(prompt: torch.Tensor, fraction: float, dims: str = "both") -> torch.Tensor:
    """prompt (m, d) -> (m, d) with its first floor(m * fraction) rows Fourier-transformed (real part)."""
    n = math.floor(prompt.shape[-2] * fraction)
    if n == 0:
        return prompt
    head = prompt[..., :n, :].float()
    if dims in ("both", "hidden"):
        head = torch.fft.fft(head, dim=-1)
    if dims in ("both", "sequence"):
        head = torch.fft.fft(head, dim=-2)
    return torch.cat([head.real.to(prompt.dtype), prompt[..., n:, :]], dim=-2)


@register_method
class VFPT(DeepPrompts):
    config_class = VFPTConfig

    def transform(self, prompt: torch.Tensor) -> torch.Tensor:
        return fourier_transform(prompt, self.config.fourier_fraction, self.config.fourier_dims)
