"""PT-MoE (arXiv 2505.09519): prompt experts from a low-rank decomposition with a shared factor.

Expert i is ``A_i @ B`` with ``A_i`` (m, r) its own and ``B`` (r, d) shared by
all experts, so E experts cost ``E*m*r + r*d`` parameters instead of ``E*m*d``.
A router with bias reads the mean input embedding; in training its logits get
multiplicative noise ``l * (1 + eps)``, eps ~ N(0, sigma^2); the top-k experts
are mixed with a softmax over their logits. The prompt is inserted once, at
the input. :meth:`PTMoE.init_from_embeddings` gives the PT-MoE paper's SVD
initialisation from task-text embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from mept.core.config import REPLACED_INITS, RoutedConfig, _non_negative, _positive
from mept.core.prompt_init import init_prompt_
from mept.core.registry import register_method
from mept.core.routing import Route, Router, RouterConfig, combine_experts
from mept.errors import MeptError
from mept.methods.base import PromptMethod, needs_pooled


@dataclass
class PTMoEConfig(RoutedConfig):
    method = "ptmoe"
    input_only = True
    experts_field = "num_experts"
    num_experts: int = 4
    rank: int = 8
    top_k: int = 1
    noise_sigma: float = 1.0
    layers: str | list[int] = "1"
    train_router: bool = True
    svd_init: bool = False  # initialise A, B from an SVD of the training text's token embeddings

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "num_experts")
        _positive(self, "rank")
        _positive(self, "top_k")
        _non_negative(self, "noise_sigma")
        if self.init in REPLACED_INITS:  # its prompts are low-rank factors, not rows a layer reads
            raise MeptError(f"PTMoEConfig.init={self.init!r} is not supported; svd_init=True initialises from text")
        if self.top_k > self.num_experts:
            raise MeptError(f"PTMoEConfig.top_k ({self.top_k}) exceeds num_experts ({self.num_experts})")


@register_method
class PTMoE(PromptMethod):
    config_class = PTMoEConfig
    routed = True

    def __init__(self, config: PTMoEConfig, hidden_size: int, num_layers: int) -> None:
        super().__init__(config, hidden_size, num_layers)
        m, r, E = config.prompt_length, config.rank, config.num_experts
        self.A = nn.Parameter(torch.empty(E, m, r))  # (E, m, r) per expert
        self.B = nn.Parameter(torch.empty(r, hidden_size))  # (r, d) shared
        init_prompt_(self.A, config.init)
        init_prompt_(self.B, config.init)
        self.A.requires_grad_(config.train_prompts)
        self.B.requires_grad_(config.train_prompts)
        # the router its config describes (RouterConfig.of: top_k, noise_sigma, router_input, ...), with PT-MoE's
        # fixed form: top-k, multiplicative noise, renormalised weights, a bias
        self.router = Router(hidden_size, E, replace(RouterConfig.of(config), routing="topk", noise="multiplicative",
                                                     renormalize=True, bias=True))
        self.router.requires_grad_(config.train_router)

    @property
    def wants_text_init(self) -> bool:
        return self.config.svd_init

    def routers(self) -> list[Router]:
        return [self.router]

    def activated_groups(self) -> dict[str, int]:
        """Per example: the low-rank factors A_i of its top-k experts + the shared B + the router."""
        _, m, r = self.A.shape
        return {"prompt": self.config.top_k * m * r + self.B.numel(),
                "router": sum(p.numel() for p in self.router.parameters())}

    def experts(self) -> torch.Tensor:
        return self.A @ self.B  # (E, m, d)

    def prompt(
        self, position: int, pooled: torch.Tensor | None, batch_size: int, update_stats: bool = True
    ) -> tuple[torch.Tensor, Route | None]:
        route = self.router(needs_pooled(pooled), update_stats)
        return combine_experts(self.experts(), route), route  # (B, m, d)

    @torch.no_grad()
    def init_from_embeddings(self, embeddings: torch.Tensor, noise: float = 0.01) -> None:
        """SVD initialisation: embeddings (T, d) of task text, T >= m.

        ``A = U_r S_r^{1/2}`` (first m rows) for every expert, plus small noise so
        experts can specialise; ``B = S_r^{1/2} V_r^T``.
        """
        m, r = self.A.shape[1], self.A.shape[2]
        if embeddings.shape[0] < m or min(embeddings.shape) < r:
            raise MeptError(f"SVD init needs at least {max(m, r)} embedding rows, got {embeddings.shape[0]}")
        U, S, Vh = torch.linalg.svd(embeddings.float(), full_matrices=False)
        root = S[:r].sqrt()
        A = U[:m, :r] * root  # (m, r)
        self.B.copy_(root[:, None] * Vh[:r])  # (r, d)
        self.A.copy_(A.expand_as(self.A) + noise * A.std() * torch.randn_like(self.A))
