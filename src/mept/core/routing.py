"""Routers: pick expert prompts per example, batched, and say why.

Every routed method (SMoP, MEPT, PT-MoE) uses :class:`Router`. A router turns a
pooled representation ``x`` (B, d) into a :class:`Route`: for each example the
indices of the experts it uses and their weights, plus the clean softmax
probabilities that analysis tools record. Experts are combined by gathering
(:func:`combine_experts`), never by a Python loop over examples.

Strategies (``top1`` to ``stochastic``: the rows of the MEPT paper's routing ablation, its Table 3;
``topk`` is not among them -- the authors' code and PT-MoE have it):

- ``top1``: ``p = softmax(W x)``; take ``argmax p`` and scale the expert by its
  probability ``p_i`` (unrenormalised) -- the router's only gradient path.
- ``perturb``: as top1 but the logits get Gaussian noise ``sigma * eps`` in
  training (SMoP's default).
- ``gumbel``: Gumbel noise with temperature ``tau``, hard top-1 with a
  straight-through estimator (forward weight 1, backward through the soft sample).
- ``dense``: every expert weighted by ``p``.
- ``stochastic``: a uniformly random expert with weight 1 in training (the
  router learns nothing), the mean of all experts at evaluation.
- ``topk`` with ``k > 1``: the ``k`` best experts; weights are their
  probabilities, or a softmax over their logits when ``renormalize`` (PT-MoE).

``noise="multiplicative"`` gives PT-MoE's ``l * (1 + eps)`` logit noise instead
of the additive kind.

What the router reads (``input_norm``), applied to the pooled hidden state x:

- ``layernorm``: a parameter-free layer norm (ours; the authors' code reads the state
  "after a norm"; the paper says the router reads the previous layer's hidden state, Sec. 3.2,
  not how it is pooled or normalised).
- ``center``: subtract a running mean of x, then layer-norm (MEPT's default: ours).
  Pooled states of unrelated inputs share one dominant direction (pairwise cosine
  0.4-0.6 on MiniLM); a linear router on them ranks experts the same way for every
  input, and its weight gradient ``sum_b g_b x_b^T`` is mostly one push along that
  shared direction -- a bias that sends every input to one expert (measured:
  ``benchmarks/router_dynamics.py``). Centring removes the shared part, so what is
  left is what tells inputs apart. The mean must keep up with the hidden states,
  which the prompts move as they train: ``stats_momentum`` 0.01 lagged by 1-4
  input spreads on SmolLM2 and the routers collapsed all the same; MEPT's
  default is 0.3.
- ``standardize``: per-feature z-score with running mean and variance.

Running statistics are buffers (saved in the adapter), updated in training
from each batch (which so contributes ``stats_momentum`` of its own centring)
and used as they stand in evaluation, so an example's routing at evaluation
never depends on its batch mates.

How logits are formed (``router_type``): ``linear`` ``W x`` (the authors' code) or
``cosine`` (X-MoE): ``cos(P x, e_i) / temperature`` with a low-dimensional
projection ``P`` and one embedding ``e_i`` per expert -- bounded logits that
cannot grow until p = 1.

Auxiliary losses are functions of one forward's :class:`Route` (it carries the
logits): Switch-Transformer load balancing (:func:`balance_loss`) and the ST-MoE
router z-loss (:func:`z_loss`). A router keeps nothing of a forward: the route
it returns is the only record, and it travels out with the model's output.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mept.core.config import InputNorm, choice_fields

# The router's choice settings, each declared once as a Literal type; RouterConfig's check and the method
# configs' (mept.core.config.PromptConfig checks every Literal field) derive from them.
Routing = Literal["top1", "perturb", "gumbel", "dense", "stochastic", "topk"]
RouterType = Literal["linear", "cosine"]
Noise = Literal["additive", "multiplicative"]
ROUTINGS = typing.get_args(Routing)
INPUT_NORMS = typing.get_args(InputNorm)
ROUTER_TYPES = typing.get_args(RouterType)


@dataclass
class Route:
    index: torch.Tensor  # (B, k) long: experts each example uses
    weight: torch.Tensor  # (B, k): their weights
    probs: torch.Tensor  # (B, E): clean softmax probabilities, for analysis
    chosen: torch.Tensor  # (B,) long: the top-1 expert, for analysis
    logits: torch.Tensor | None = None  # (B, E): clean router logits, for the auxiliary losses

    def detach(self) -> "Route":
        """The same route cut from the graph (views, no copies): what the model's output carries."""
        return Route(self.index.detach(), self.weight.detach(), self.probs.detach(), self.chosen.detach(),
                     None if self.logits is None else self.logits.detach())


@dataclass(frozen=True)
class RouterConfig:
    """How a router routes, handed to :class:`Router` whole (a method builds it from its own config:
    :meth:`RouterConfig.of`)."""

    routing: Routing = "top1"
    top_k: int = 1
    noise_sigma: float = 1.0
    noise: Noise = "additive"
    gumbel_tau: float = 1.0
    renormalize: bool = False
    bias: bool = False
    dropout: float = 0.0
    input_norm: InputNorm = "layernorm"
    router_type: RouterType = "linear"
    temperature: float = 1.0
    cosine_dim: int = 16
    stats_momentum: float = 0.01

    @classmethod
    def of(cls, settings: object) -> "RouterConfig":
        """The router a method's config describes, by one naming rule: its ``router_X`` (else ``X``) sets this
        class's ``X`` (``router_dropout`` -> ``dropout``, ``router_temperature`` -> ``temperature``, ``routing``
        -> ``routing``), and :data:`CONFIG_NAMES` lists the names no rule gives. A setting the method's config
        lacks keeps its default here (SMoP has no ``top_k``: 1)."""
        found = {}
        for f in fields(cls):
            names = (CONFIG_NAMES.get(f.name), f"router_{f.name}", f.name)
            name = next((n for n in names if n is not None and hasattr(settings, n)), None)
            if name is not None:
                found[f.name] = getattr(settings, name)
        return cls(**found)

    def __post_init__(self) -> None:
        for name, choices in choice_fields(type(self)).items():  # every Literal field: its values, from its type
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")


# RouterConfig's settings whose name in a method's config the rule of RouterConfig.of does not give
# (RoutedConfig.router_input: what the router reads, kept for the runs and flags that name it).
CONFIG_NAMES = {"input_norm": "router_input"}


class Router(nn.Module):
    def __init__(self, hidden_size: int, num_experts: int, config: RouterConfig | None = None, **settings: Any) -> None:
        """``config`` (or its fields as keywords: ``Router(d, E, input_norm="center")``) says how it routes."""
        super().__init__()
        config = config if config is not None else RouterConfig(**settings)
        routing, top_k, input_norm, router_type, bias = (config.routing, config.top_k, config.input_norm,
                                                         config.router_type, config.bias)
        self.input_norm = input_norm
        self.router_type = router_type
        self.temperature = config.temperature
        self.stats_momentum = config.stats_momentum
        if input_norm != "layernorm":
            self.register_buffer("running_mean", torch.zeros(hidden_size))
            self.register_buffer("running_var", torch.ones(hidden_size))
            self.register_buffer("stats_updates", torch.zeros((), dtype=torch.long))
        if router_type == "cosine":
            self.linear = nn.Linear(hidden_size, config.cosine_dim, bias=bias)  # the projection P
            self.expert_embed = nn.Parameter(torch.empty(num_experts, config.cosine_dim))  # (E, r)
            nn.init.orthogonal_(self.expert_embed)
        else:
            self.linear = nn.Linear(hidden_size, num_experts, bias=bias)
        nn.init.orthogonal_(self.linear.weight)
        if bias:
            nn.init.zeros_(self.linear.bias)
        self.num_experts = num_experts
        self.routing = routing
        self.top_k = num_experts if routing == "dense" else (top_k if routing == "topk" else 1)
        self.noise_sigma = config.noise_sigma
        self.noise = config.noise
        self.gumbel_tau = config.gumbel_tau
        self.renormalize = config.renormalize
        self.dropout = nn.Dropout(config.dropout)

    def normalize_input(self, x: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        """Pooled state (B, d) -> what the router reads (B, d), per ``input_norm``.

        ``update_stats=False`` when gradient checkpointing recomputes a forward: the running
        statistics were moved once by the forward itself, and the recomputation must read them
        as that forward left them (then it normalises exactly as the forward did).
        """
        x = x.float()
        if self.input_norm == "layernorm":
            return F.layer_norm(x, x.shape[-1:])
        if self.training and update_stats:
            self._update_stats(x)
        x = x - self.running_mean
        if self.input_norm == "center":
            return F.layer_norm(x, x.shape[-1:])
        return x * torch.rsqrt(self.running_var + 1e-5)

    @torch.no_grad()
    def _update_stats(self, x: torch.Tensor) -> None:
        # The first batch sets the statistics; later ones move them by an exponential average.
        momentum = 1.0 if int(self.stats_updates) == 0 else self.stats_momentum
        var = x.var(0, unbiased=False) if x.shape[0] > 1 else self.running_var
        self.running_mean.lerp_(x.mean(0), momentum)
        self.running_var.lerp_(var, momentum)
        self.stats_updates += 1

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) normalised input -> (B, E) router logits."""
        h = self.linear(self.dropout(x.to(self.linear.weight.dtype)))
        if self.router_type == "cosine":
            h = F.normalize(h, dim=-1) @ F.normalize(self.expert_embed, dim=-1).T  # (B, E) in [-1, 1]
        return h / self.temperature

    def forward(self, x: torch.Tensor, update_stats: bool = True) -> Route:
        """Pooled state (B, d) -> this forward's :class:`Route`, logits included (nothing is kept).

        Always in fp32, also inside a bf16/fp16 autocast run (:mod:`mept.harness.precision`): the top-1
        choice is an argmax over logits that bf16's 8-bit mantissa would round into ties, and the
        router is a (B, d) x (d, E) product, negligible beside the backbone.
        """
        with torch.autocast(x.device.type, enabled=False):
            return self._route(x, update_stats)

    def _route(self, x: torch.Tensor, update_stats: bool) -> Route:
        logits = self.logits(self.normalize_input(x, update_stats))  # (B, E), fp32
        probs = logits.softmax(-1)
        chosen = probs.argmax(-1)
        B, E = logits.shape
        if self.routing == "stochastic":
            if self.training:
                index = torch.randint(E, (B, 1), device=x.device)
                weight = torch.ones(B, 1, device=x.device, dtype=probs.dtype)
            else:
                index = torch.arange(E, device=x.device).expand(B, E)
                weight = torch.full((B, E), 1.0 / E, device=x.device, dtype=probs.dtype)
            return Route(index, weight, probs, index[:, 0] if self.training else chosen, logits)

        if self.routing == "gumbel":
            if self.training:
                gumbel = -torch.empty_like(logits).exponential_().log()
                soft = ((logits + gumbel) / self.gumbel_tau).softmax(-1)
                index = soft.argmax(-1, keepdim=True)
                picked = soft.gather(1, index)
                weight = 1.0 + picked - picked.detach()  # straight-through: value 1, gradient of soft
            else:
                index = chosen[:, None]
                weight = torch.ones(B, 1, device=x.device, dtype=probs.dtype)
            return Route(index, weight, probs, index[:, 0], logits)

        noisy = logits
        if self.training and self.routing in ("perturb", "topk") and self.noise_sigma > 0:
            eps = torch.randn_like(logits) * self.noise_sigma
            noisy = logits * (1 + eps) if self.noise == "multiplicative" else logits + eps
        if self.routing == "dense":
            index = torch.arange(E, device=x.device).expand(B, E)
            return Route(index, probs, probs, chosen, logits)
        top_logits, index = noisy.topk(self.top_k, dim=-1)  # (B, k)
        if self.renormalize:
            weight = top_logits.softmax(-1)
        else:
            weight = noisy.softmax(-1).gather(1, index)
        return Route(index, weight, probs, index[:, 0], logits)


def balance_loss(route: Route) -> torch.Tensor:
    """Switch-Transformer balance loss of one route: E * sum_e f_e * P_e, minimal (=1) when uniform.

    ``f_e`` is the share of examples whose top-1 expert is e, ``P_e`` the mean router probability.
    """
    E = _logits_of(route).shape[-1]
    frac = F.one_hot(route.chosen, E).float().mean(0)
    return E * (frac * route.logits.float().softmax(-1).mean(0)).sum()


def z_loss(route: Route) -> torch.Tensor:
    """ST-MoE router z-loss of one route: mean (logsumexp logits)^2; keeps logits small."""
    return _logits_of(route).float().logsumexp(-1).pow(2).mean()


def _logits_of(route: Route) -> torch.Tensor:
    if route.logits is None:  # a Route built by hand, not by Router.forward
        raise ValueError("the auxiliary router losses need the route's logits (Router.forward sets them)")
    return route.logits


def trace_of(routes: dict[int, Route] | None) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """A forward's routing (``out.routes``) as layer id -> (probs (B, E), chosen (B,)); {} when unrouted."""
    return {layer: (r.probs, r.chosen) for layer, r in sorted((routes or {}).items())}


def combine_experts(experts: torch.Tensor, route: Route) -> torch.Tensor:
    """Weighted sum of the routed experts: experts (E, m, d) -> prompts (B, m, d).

    ``index_select`` rather than advanced indexing: its backward is one ``index_add_``, where
    ``experts[index]`` back-propagates through a serial accumulating ``index_put_`` on CPU.
    """
    E, m, d = experts.shape
    B, k = route.index.shape
    picked = experts.reshape(E, m * d).index_select(0, route.index.reshape(-1)).view(B, k, m, d)  # (B, k, m, d)
    weight = route.weight.to(experts.dtype)
    if k == 1:
        return picked[:, 0] * weight[:, :, None]  # (B, m, d): no reduction over one expert
    return (picked * weight[:, :, None, None]).sum(1)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only, so an example's routing never depends on its batch mates' padding.

    hidden (B, T, d), mask (B, T) -> (B, d)
    """
    mask = mask.to(hidden.dtype)
    summed = torch.bmm(mask[:, None, :], hidden)[:, 0]  # (B, d), no (B, T, d) temporary
    return summed / mask.sum(1, keepdim=True).clamp_min(1.0)
