"""The contract every prompt method fulfils, and the two shapes most methods take.

A method owns its trainable tensors and answers one question: *what goes in
the m prompt slots before prompted layer j, for this batch?* How the slots
are reserved and overwritten inside a backbone is the injector's job
(:mod:`mept.inject`), shared by all methods. A method keeps nothing of a
forward: :meth:`PromptMethod.prompt` returns the route it took, the injector
collects the routes of one forward, and :meth:`PromptMethod.aux_loss` turns
them into that forward's auxiliary loss.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mept.core.config import PromptConfig, RoutedConfig, parse_layers
from mept.core.prompt_init import copy_rows_, fill_rows_, init_prompt_, read_prompt_source, sample_rows_, source_prompts
from mept.core.routing import Route, Router, RouterConfig, balance_loss, combine_experts, z_loss
from mept.errors import MeptError


class PromptMethod(nn.Module):
    config_class: ClassVar[type[PromptConfig]]
    routed: ClassVar[bool] = False  # does prompt() need the pooled hidden state?

    def __init__(self, config: PromptConfig, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        self.layer_ids = parse_layers(config.layers, num_layers)  # 0-based prompted layers
        self.num_slots = config.prompt_length

    def prompt(
        self, position: int, pooled: torch.Tensor | None, batch_size: int, update_stats: bool = True
    ) -> tuple[torch.Tensor, Route | None]:
        """Prompts for ``self.layer_ids[position]``, (B, m, d), and the route that chose them (None: unrouted).

        ``pooled`` (B, d) is the layer input's masked mean (routed methods only). ``update_stats``
        is False when gradient checkpointing recomputes the forward (routers' running statistics
        move once per forward).
        """
        raise NotImplementedError

    @property
    def wants_text_init(self) -> bool:
        """Should the trainer call :meth:`init_from_embeddings` with token embeddings of text first?

        ``init="task_text"``: the text is ``init_from``, or a sample of the training data's.
        """
        return self.config.init == "task_text"

    def init_from_embeddings(self, embeddings: torch.Tensor) -> None:
        """Initialise from token embeddings (T, d) of the task's text (methods with ``wants_text_init``)."""
        raise NotImplementedError(f"{type(self).__name__} has no initialisation from text")

    def init_from_states(self, states: list[torch.Tensor], generator: torch.Generator) -> None:
        """``init="hidden_states"``: ``states[j]`` (N, d) are hidden states of real text tokens at the input of
        prompted layer j, from the frozen backbone; every prompt row of that layer becomes one of them."""
        raise NotImplementedError(f"{type(self).__name__} has no initialisation from hidden states")

    def routers(self) -> list[Router]:
        return []

    def lr_scales(self) -> dict[str, float]:
        """The method's parameters (by attribute name) that train at a multiple of the prompts' lr, each with its
        multiple.

        Empty for most methods: every prompt trains at ``lr``. The optimizer's groups
        (:meth:`mept.model.prompted.PromptedModel.param_groups`) read it; routers have their own scale.
        """
        return {}

    def aux_loss(self, routes: list[Route]) -> torch.Tensor | None:
        """One forward's routing losses, weighted as the config asks; None when none is enabled.

        ``routes`` are that forward's routes with their graph, in layer order. ``balance_loss``
        weighs the Switch load-balancing loss and ``z_loss`` the ST-MoE router z-loss, each
        averaged over the prompted layers' routes. The one place they are combined: the model
        returns the result with its output (and adds it to the loss it computes in training).
        """
        config = self.config
        if not isinstance(config, RoutedConfig) or not routes:
            return None
        total = None
        for weight, loss_of in ((config.balance_loss, balance_loss), (config.z_loss, z_loss)):
            if not weight:
                continue
            term = weight * torch.stack([loss_of(r) for r in routes]).mean()
            total = term if total is None else total + term
        return total

    def parameter_groups(self) -> dict[str, int]:
        """Trainable-parameter counts by role (prompts, routers) for the report."""
        router = sum(p.numel() for r in self.routers() for p in r.parameters())
        total = sum(p.numel() for p in self.parameters())
        return {"prompt": total - router, "router": router}

    def activated_groups(self) -> dict[str, int]:
        """Parameters one example uses at inference, by role (prompts, routers).

        A method that picks among stored prompts uses only the picked ones per example; methods
        without a router use every prompt, so the default is the stored count. Our reading of the MEPT
        paper's "Para" for MEPT is this count (it matches on T5-Base and Llama, not on T5-Large: the
        evidence is in ``benchmarks/paper_numbers.py``); the paper calls "Para" trainable parameters.
        """
        return self.parameter_groups()


class DeepPrompts(PromptMethod):
    """One learned (m, d) prompt per prompted layer, the same for every input.

    Prompt Tuning is the one-layer case, P-Tuning v2 the all-layer case, VFPT
    adds a Fourier transform (:meth:`transform`).
    """

    def __init__(self, config: PromptConfig, hidden_size: int, num_layers: int) -> None:
        super().__init__(config, hidden_size, num_layers)
        self.prompts = nn.Parameter(torch.empty(len(self.layer_ids), config.prompt_length, hidden_size))  # (L, m, d)
        init_prompt_(self.prompts, config.init)
        self.prompts.requires_grad_(config.train_prompts)
        if config.init == "previous_knowledge":  # paper Table 10: start from a trained prompt
            source = read_prompt_source(config.init_from)
            with torch.no_grad():
                for j, prompt in enumerate(source_prompts(source, len(self.layer_ids), hidden_size)):
                    copy_rows_(self.prompts[j], prompt)

    def init_from_embeddings(self, embeddings: torch.Tensor) -> None:
        """``init="task_text"``: each layer's prompt is consecutive token embeddings (T, d) of the text."""
        fill_rows_(self.prompts, embeddings)

    def init_from_states(self, states: list[torch.Tensor], generator: torch.Generator) -> None:
        for j, rows in enumerate(states):
            sample_rows_(self.prompts.data[j], rows, generator)

    def transform(self, prompt: torch.Tensor) -> torch.Tensor:
        return prompt

    def prompt(
        self, position: int, pooled: torch.Tensor | None, batch_size: int, update_stats: bool = True
    ) -> tuple[torch.Tensor, Route | None]:
        return self.transform(self.prompts[position]).expand(batch_size, -1, -1), None  # (B, m, d)


class RoutedPrompts(PromptMethod):
    """Per prompted layer: E expert prompts, a router that picks among them, optional shared prompts.

    ``P^j = sum_k w_k RE^j_{i_k} + sum_s SE^j_s`` -- the router-expert term is
    gathered per example, the shared term is added for every input.
    """

    routed = True

    def __init__(
        self,
        config: PromptConfig,
        hidden_size: int,
        num_layers: int,
        *,
        num_experts: int,
        num_shared: int,
        router: RouterConfig,
        train_router: bool = True,
    ) -> None:
        super().__init__(config, hidden_size, num_layers)
        L, m = len(self.layer_ids), config.prompt_length
        self.experts = nn.Parameter(torch.empty(L, num_experts, m, hidden_size))  # (L, E, m, d)
        init_prompt_(self.experts, config.init)
        self.experts.requires_grad_(config.train_prompts)
        self.shared = None
        if num_shared:
            self.shared = nn.Parameter(torch.empty(L, num_shared, m, hidden_size))  # (L, S, m, d)
            init_prompt_(self.shared, config.init)
            self.shared.requires_grad_(config.train_prompts)
        self.router_list = nn.ModuleList(Router(hidden_size, num_experts, router) for _ in range(L))
        self.router_list.requires_grad_(train_router)
        if config.init == "previous_knowledge":
            self._init_from_source(read_prompt_source(config.init_from), hidden_size)

    @torch.no_grad()
    def _init_from_source(self, source: dict[str, torch.Tensor], hidden_size: int) -> None:
        """Paper Table 10's "previous knowledge" (our reading: the paper gives no procedure).

        From a routed adapter of the same shape (e.g. MEPT trained on another task): experts,
        shared experts and routers are copied. From a prompt adapter (prompt tuning, P-Tuning v2,
        VFPT): every routed and shared expert of layer j starts as the source's prompt of layer j.
        """
        if "experts" in source:
            if source["experts"].shape != self.experts.shape:
                raise MeptError(f"init_from: the source's experts are {tuple(source['experts'].shape)}, "
                                f"this method's {tuple(self.experts.shape)} (layers, experts, m, d)")
            mine = dict(self.named_parameters())
            for name, value in source.items():
                if name in mine and mine[name].shape == value.shape:
                    mine[name].copy_(value)
            return
        for j, prompt in enumerate(source_prompts(source, len(self.layer_ids), hidden_size)):
            copy_rows_(self.experts[j], prompt)
            if self.shared is not None:
                copy_rows_(self.shared[j], prompt)

    def init_from_embeddings(self, embeddings: torch.Tensor) -> None:
        """``init="task_text"``: every routed and shared expert is a window of the text's token embeddings (T, d)."""
        fill_rows_(self.experts, embeddings)
        if self.shared is not None:  # the rows after the experts' (the cycle continues)
            used = self.experts.numel() // self.experts.shape[-1]
            fill_rows_(self.shared, embeddings.roll(-(used % max(len(embeddings), 1)), 0))

    def init_from_states(self, states: list[torch.Tensor], generator: torch.Generator) -> None:
        for j, rows in enumerate(states):
            sample_rows_(self.experts.data[j], rows, generator)
            if self.shared is not None:
                sample_rows_(self.shared.data[j], rows, generator)

    def routers(self) -> list[Router]:
        return list(self.router_list)

    def experts_used(self) -> int:
        """Router experts one example uses per layer at inference: 1 (top-1, perturbation, Gumbel), k (top-k),
        all (dense; stochastic, which mixes every expert at evaluation)."""
        if not len(self.router_list):
            return 0
        router = self.router_list[0]
        return router.num_experts if router.routing == "stochastic" else router.top_k

    def activated_groups(self) -> dict[str, int]:
        """Per example: the routed experts it uses + every shared expert + every router (all layers)."""
        L, _, m, d = self.experts.shape
        shared = self.shared.numel() if self.shared is not None else 0
        return {"prompt": L * self.experts_used() * m * d + shared, "router": self.parameter_groups()["router"]}

    def prompt(
        self, position: int, pooled: torch.Tensor | None, batch_size: int, update_stats: bool = True
    ) -> tuple[torch.Tensor, Route | None]:
        route = self.router_list[position](needs_pooled(pooled), update_stats)
        prompts = combine_experts(self.experts[position], route)  # (B, m, d)
        if self.shared is not None:
            prompts = prompts + self.shared[position].sum(0)  # shared experts: added, never gated
        return prompts, route


def needs_pooled(pooled: torch.Tensor | None) -> torch.Tensor:
    """Routed methods read the pooled hidden state (the injector passes it when ``routed`` is True)."""
    if pooled is None:
        raise ValueError("a routed method's prompt() needs the pooled hidden state (B, d)")
    return pooled
