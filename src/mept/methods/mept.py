"""MEPT: Mixture of Expert Prompt Tuning (EMNLP 2025, arXiv 2509.00996).

At every prompted layer j, a router reads the layer's input hidden state of
the text tokens (masked mean pool, then a parameter-free layer norm: our
choice, where the authors' code pools padding too; layer 1 reads the input
embeddings) and picks among N_r router-expert prompts; N_s shared-expert
prompts are always added::

    p^j   = softmax(W^j pool(h^{j-1}))              # (B, N_r)
    i^j   = argmax p^j
    P^j   = p^j_{i} * RE^j_{i}  +  sum_s SE^j_s       # (B, m, d)

Every ablation of the paper's Tables 2-4, 10 and 13 is a switch: ``routing`` (top1, stochastic, dense,
gumbel, perturb; topk with ``top_k``), ``shared`` (on / off / replace: the
shared experts become extra router experts), ``layers`` (depth),
``train_router`` / ``train_prompts``, ``init`` (xavier_normal, he_normal).
``balance_loss`` > 0 adds a Switch-style load-balancing loss (0.01 by default: ours; the paper describes
none, and :meth:`MEPTConfig.paper` has 0); it, ``z_loss`` and ``router_lr_scale`` are declared by
:class:`~mept.core.config.RoutedConfig`, shared with SMoP and PT-MoE.

Router switches (issue: routers that collapse to one expert per layer):
``router_input`` (layernorm | center | standardize: what the router reads),
``router_type`` (linear, the paper's | cosine, X-MoE) with ``router_temperature``, ``z_loss``
(ST-MoE router z-loss weight) and ``router_lr_scale`` (the router's learning rate
relative to the prompts'). All but the linear router are ours, not the paper's.

:meth:`MEPTConfig.paper` (``mept train --paper``) is the paper's MEPT: what the
paper states (``PAPER_STATED``), and for what it leaves open the authors'
code's choice or ours, each labelled (``PAPER_UNSTATED``). The library default
differs in three router settings of ours: ``router_lr_scale="auto"`` (see
:class:`~mept.core.config.RoutedConfig`); ``balance_loss=0.01``, added because without it
the router collapsed to one expert in 1-3 of MiniLM's 6 layers when trained with
AdamW at our lr 1e-2 (``benchmarks/studies/router_settings.md``); and ``router_input="center"``
with ``router_stats_momentum=0.3``: on SmolLM2 (30 layers) the layer-normed input taught
every router a bias that sent all inputs to one expert on 19-29 of 30 layers
(``benchmarks/studies/routing_at_scale.md``; :mod:`mept.core.routing` says why). At the paper's rates
(1e-4 and 5e-5, 3 epochs on MiniLM) no layer collapsed, and the router had moved
little from its initialisation; the paper's 70 epochs at those rates are untested here.
MEPT's default lr (ours) is ``1e-2 * min(1, 384 / d)`` (``lr_width_rule_since``), and 1e-3 on a text decoder
(``decoder_lrs``; 1e-4 in defaults generations 5-6); the paper searches 1e-5..1e-4 and ``--paper`` searches that grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mept.core.config import Init, InputNorm, RoutedConfig, _non_negative, _positive, _positive_number
from mept.core.registry import register_method
from mept.core.routing import RouterConfig, RouterType, Routing
from mept.errors import MeptError
from mept.methods.base import RoutedPrompts

# What the paper states (benchmarks/paper_numbers.py lists each with its place and words).
PAPER_STATED: dict[str, object] = dict(
    routing="top1",  # Sec. 3.2: only the expert "with the highest routing probability" is activated
    num_shared=1, shared="on",  # Sec. 4.3: "one single shared expert per layer"
    init="xavier_normal",  # Appendix E: "we apply xavier normal as the default initialization strategy"
    layers="all",  # Table 2: its default row prompts layers 1-12 of T5-Base's 12
    router_type="linear",  # Sec. 3.2: the router "is implemented as a linear network followed by a softmax"
    # The method (Sec. 3.2) has no auxiliary loss, and Appendix G.3, on load balancing, points to the
    # perturbation row of Table 3 instead of a loss: none here (our default adds one: balance_loss).
    balance_loss=0.0,
)
# The paper's search (Sec. 4.3: "we linearly search the best prompt length from {10, 15, 20} and number
# of router experts from {4, 10, 20}"; its lr, Appendix B.2: "from {1e-5, 5e-5, 1e-4} for MEPT"), per task.
# The paper does not define "linearly" nor say on which split "best" is judged. Ours (``--paper-search``):
# each listed value in turn, every combination (it does not say the axes are searched one at a time), best
# on the validation split (the authors' code's: 10% of train), the test split scored once, for the choice.
PAPER_SEARCH: dict[str, tuple[int, ...]] = dict(prompt_length=(10, 15, 20), num_experts=(4, 10, 20))
# What the paper leaves open, and whose choice fills it. Keys are MEPTConfig fields; the value's label
# (comment) says whose choice it is. The router's initialisation is not a setting: see ROUTER_INIT.
PAPER_UNSTATED: dict[str, object] = dict(
    # ours: one point of the paper's search (PAPER_SEARCH), fixed so that one run needs no search; the
    # paper picks m and N_r per task and states no single value (``--paper-search`` searches as it does)
    num_experts=10, prompt_length=10,
    # the paper: the router reads the previous layer's hidden state (Sec. 3.2), not how it is pooled or
    # normalised; the authors' code reads it "after a norm"; masked mean + parameter-free layer norm: ours
    router_input="layernorm",
    # our switches, off as in the authors' code (the paper's softmax, Sec. 3.1, has no temperature)
    router_temperature=1.0, z_loss=0.0, router_lr_scale=1.0,
    expert_lr_scale=1.0,  # ours: the routed experts train at the prompts' lr; the paper names no lr of their own
    router_dropout=0.0,  # ours (the authors' code has dropout 0.2 on the router when not perturbing)
    # the paper does not say where a decoder's prompt positions stand; the authors' code puts them at
    # position 0, over the backbone's attention sink (mept.inject.spec.sink_columns: ours keeps the sink)
    attention_sink=False,
)
# The router's weights start orthogonal (mept.core.routing.Router): the authors' code's choice. The paper states
# Xavier normal for the prompts (Appendix E, Table 10) and no initialisation for the router.
ROUTER_INIT = "orthogonal (the authors' code; the paper states none for the router)"
# on: N_s shared experts added to the routed one (the paper's); off: none; replace: they become router experts
Shared = Literal["on", "off", "replace"]


@dataclass
class MEPTConfig(RoutedConfig):
    method = "mept"
    experts_field = "num_experts"
    # the paper's lr grid for MEPT; the optimiser is not stated (the authors' code: Adafactor; ours: AdamW)
    paper_lr_grid = (1e-5, 5e-5, 1e-4)
    changed_defaults = {2: {"router_input": "layernorm"}, 3: {"init": "xavier_normal"}}
    # ours: the default lr is 1e-2 * min(1, 384 / d), 1e-2 on MiniLM, 5e-3 on MPNet and T5-Base (a text decoder:
    # decoder_lrs below; runs saved before defaults generation 4 keep 1e-2). At 1e-2, MEPT on MPNet (768 wide) did
    # not train over 6 epochs on 2 of 3 seeds (benchmarks/studies/table3_mpnet.md); see mept.core.config.width_ratio.
    lr_width_rule_since = 4
    # ours, on a text decoder (benchmarks/studies/decoder_prompts.md). Generation 5: 1e-4, the top of the paper's
    # grid, instead of the width rule's 6.7e-3 on SmolLM2: the prompts start as the frozen backbone's own layer
    # inputs (init=auto), and at 6.7e-3 the first layer's rows moved 61% of their size in 300 steps and MEPT
    # scored 14.30 below 1e-4 on bb-diverse (p = 0.024, 3 seeds; "SmolLM2 on the bb-diverse mixture").
    # Generation 7: 1e-3, the other prompt methods' decoder lr: on SmolLM2's vader mixture (fp32) it scored
    # above 1e-4 at 200 steps (+1.25, p = 0.038) and at 800 (+2.42, p = 0.032, 3 seeds each), and was not told
    # apart from it on the BIG-bench tasks at one epoch (-0.46, p = 0.72, 6 pairs; "SmolLM2's `vader` at 800 steps").
    decoder_lrs = {5: 1e-4, 7: 1e-3}
    num_experts: int = 10
    num_shared: int = 1
    shared: Shared = "on"
    routing: Routing = "top1"
    top_k: int = 2
    noise_sigma: float = 1.0
    gumbel_tau: float = 1.0
    router_dropout: float = 0.0
    train_router: bool = True
    # ours, not the paper's (which describes none): keeps every layer routing at our lr 1e-2 (benchmarks/routing.py);
    # paper() has 0
    balance_loss: float = 0.01
    # ours (benchmarks/studies/routing_at_scale.md): the router reads its pooled input minus a running mean that
    # follows the hidden states as the prompts move them; see the class docstring
    router_input: InputNorm = "center"
    router_stats_momentum: float = 0.3
    router_type: RouterType = "linear"
    router_temperature: float = 1.0
    # ours: the routed experts' lr as a multiple of the prompt lr (the shared experts train at the prompt lr).
    # Adam moves a routed expert as far per step as the shared one though its gradient comes from the inputs
    # routed to it alone; see MEPT.lr_scales. The paper names one lr per run (Appendix B.2), none for the routed
    # experts apart (--paper: 1).
    expert_lr_scale: float = 1.0
    # ours: the frozen backbone's own layer inputs on a text decoder, the paper's Xavier normal elsewhere
    # (mept.model.states; benchmarks/studies/decoder_prompts.md); --paper: Xavier normal everywhere
    init: Init = "auto"
    paper_settings = {**PAPER_UNSTATED, **PAPER_STATED}  # what --paper sets (a class fact, not a field)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "num_experts")
        _positive(self, "top_k")
        for name in ("noise_sigma", "router_dropout", "num_shared", "expert_lr_scale"):
            _non_negative(self, name)
        for name in ("gumbel_tau", "router_temperature"):  # both divide the router's logits
            _positive_number(self, name)
        if self.router_dropout >= 1:
            raise MeptError(f"MEPTConfig.router_dropout must be in [0, 1), got {self.router_dropout!r}")
        if self.routing == "topk" and self.top_k > self.router_experts:  # as PT-MoE: refused, not capped
            raise MeptError(f"MEPTConfig.top_k ({self.top_k}) exceeds the {self.router_experts} router experts")

    @classmethod
    def paper(cls, **overrides) -> "MEPTConfig":
        """The paper's MEPT: what it states, and labelled choices where it states nothing (see the constants)."""
        return cls(**{**PAPER_UNSTATED, **PAPER_STATED, **overrides})

    def router_config(self) -> RouterConfig:
        """The router settings, under the names :class:`~mept.core.routing.Router` reads (the one renaming rule:
        :meth:`~mept.core.routing.RouterConfig.of`)."""
        return RouterConfig.of(self)

    @property
    def router_experts(self) -> int:
        return self.num_experts + (self.num_shared if self.shared == "replace" else 0)

    @property
    def shared_experts(self) -> int:
        return self.num_shared if self.shared == "on" else 0


@register_method
class MEPT(RoutedPrompts):
    config_class = MEPTConfig

    def __init__(self, config: MEPTConfig, hidden_size: int, num_layers: int) -> None:
        super().__init__(
            config,
            hidden_size,
            num_layers,
            num_experts=config.router_experts,
            num_shared=config.shared_experts,
            router=config.router_config(),
            train_router=config.train_router,
        )

    def lr_scales(self) -> dict[str, float]:
        """The routed experts train at ``expert_lr_scale`` times the prompt lr (ours; 1: the paper names no lr of
        their own).

        Why a separate rate: AdamW moves every routed expert about as far per step as the shared expert,
        although its gradient comes only from the inputs routed to it (a tenth of a batch at N_r = 10)
        and is scaled by the router's probability; on MPNet the per-input routed expert, not the router,
        was what cost MEPT accuracy. Measured there (color/hex, 10 epochs, 3 seeds): 0.1 neither helps nor
        hurts (-0.33, p = 0.87), and it lets MEPT train at 1e-2, where with every group doubled it does not
        (``benchmarks/studies/table3_mpnet.md``, "Routed experts that train slower or start at zero").
        """
        return {"experts": self.config.expert_lr_scale}
