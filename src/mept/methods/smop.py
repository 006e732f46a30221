"""SMoP (Choi et al., EMNLP 2023): sparse mixture of short prompts, routed once at the input.

A router on the masked mean of the input embeddings picks the top-1 of K short
prompts per example (Gaussian logit perturbation in training, sigma = 1) and
scales it by its gate probability. It is MEPT's routed-expert term at the
input layer only, with no shared prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mept.core.config import RoutedConfig, _non_negative, _positive
from mept.core.registry import register_method
from mept.core.routing import RouterConfig
from mept.methods.base import RoutedPrompts


@dataclass
class SMoPConfig(RoutedConfig):
    method = "smop"
    input_only = True
    deep_variant = "mept"
    experts_field = "num_prompts"
    prompt_length: int = 5
    num_prompts: int = 4
    layers: str | list[int] = "1"
    # mept.core.routing.Routing without topk
    routing: Literal["perturb", "top1", "gumbel", "dense", "stochastic"] = "perturb"
    noise_sigma: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "num_prompts")
        _non_negative(self, "noise_sigma")


@register_method
class SMoP(RoutedPrompts):
    config_class = SMoPConfig

    def __init__(self, config: SMoPConfig, hidden_size: int, num_layers: int) -> None:
        super().__init__(
            config,
            hidden_size,
            num_layers,
            num_experts=config.num_prompts,
            num_shared=0,
            router=RouterConfig.of(config),
        )
