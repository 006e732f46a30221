"""Configuration shared by every prompt method.

Configs are plain dataclasses: they are data (saved verbatim into
``adapter_config.json``), and they validate themselves at construction so a
bad value fails where it was written, naming the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Literal

from mept.errors import MeptError

# "auto" (ours): hidden_states on a text decoder, xavier_normal elsewhere (mept.model.states says why)
Init = Literal["xavier_normal", "he_normal", "vpt_uniform", "task_text", "previous_knowledge", "hidden_states", "auto"]
INITS = typing.get_args(Init)
# inits that copy values from a source (paper Table 10's "previous knowledge"); the random ones draw them
SOURCE_INITS = ("task_text", "previous_knowledge", "hidden_states")
# drawn as Xavier normal at construction and replaced once their source is at hand ("auto": where it resolves
# to hidden_states)
REPLACED_INITS = (*SOURCE_INITS, "auto")
# What a router reads (mept.core.routing says what each does and why): declared here, beside the routed methods'
# shared settings (RoutedConfig), and imported by mept.core.routing, which cannot be imported from here.
InputNorm = Literal["layernorm", "center", "standardize"]
StateInitScale = Literal["states", "xavier"]


# The generation of the methods' defaults: raise it when a default changes, and list the old value in the
# method config's ``changed_defaults``. ``run_config.json`` records it (``method_defaults``); 2: MEPT's
# router reads a centred input (benchmarks/studies/routing_at_scale.md); 3: a text decoder keeps its attention
# sink in front of the prompt slots (benchmarks/studies/decoder_prompts.md); 4: MEPT's default lr scales with
# the backbone's width (``PromptConfig.lr_width_rule_since``; benchmarks/studies/table3_mpnet.md); 5: MEPT's
# default lr on a text decoder is 1e-4 (``PromptConfig.decoder_lrs``; benchmarks/studies/decoder_prompts.md); 6: the
# other prompt methods' default lr on a text decoder is 1e-3 (the same study); 7: MEPT's too (the same study,
# "SmolLM2's `vader` at 800 steps").
DEFAULTS_GENERATION = 7


def decoder_lr_of(config_class: type, generation: int) -> float | None:
    """The default lr of ``config_class``'s method on a text decoder for a run of defaults ``generation``: the
    value of the latest ``decoder_lrs`` entry at or before it (None: no decoder rule then). One lookup for every
    method, so that a run saved under any generation keeps the lr it trained at."""
    lrs = getattr(config_class, "decoder_lrs", {})
    since = [g for g in lrs if g <= generation]
    return lrs[max(since)] if since else None


def defaults_of(config_class: type, generation: int) -> dict[str, Any]:
    """The settings of ``config_class`` (any method's or baseline's config) whose default changed after
    ``generation``, with the values they had in it; {} for a class that never changed one."""
    changes: dict[int, dict[str, Any]] = {}
    for klass in reversed(config_class.__mro__):  # a method's own changes beside those of every prompt method
        for changed, values in vars(klass).get("changed_defaults", {}).items():
            changes[changed] = {**changes.get(changed, {}), **values}
    before: dict[str, Any] = {}
    for changed in sorted(g for g in changes if g > generation):
        for key, value in changes[changed].items():
            before.setdefault(key, value)  # the earliest change after it holds that generation's value
    return before


@dataclass
class PromptConfig:
    """Fields every method has.

    ``layers`` picks the prompted layers, 1-based as in the papers: ``"all"``,
    ``"1"`` (shallow: input only), a range ``"1-6"``, a list ``"1,3,5"`` or a
    Python list of ints.
    """

    method: ClassVar[str] = ""
    # The config field that ``--experts`` sets (None: the method has no experts).
    experts_field: ClassVar[str | None] = None
    # ``--lr-grid paper``: the MEPT paper's grid for "other prompt tuning methods" (Appendix B.2: prompt tuning,
    # P-Tuning v2, SMoP, VFPT); PT-MoE, which it does not run, inherits it (ours).
    paper_lr_grid: ClassVar[tuple[float, ...]] = (0.1, 0.3, 0.5)
    # The small grid ``mept compare`` searches on validation (ours: around TrainConfig.default_lr's 1e-2, moved
    # as the default moves with the backbone: TrainConfig.auto_lr_grid).
    compare_lr_grid: ClassVar[tuple[float, ...]] = (3e-3, 1e-2, 3e-2)
    # The defaults generation from which the method's default lr is scaled by :func:`width_ratio` of the
    # backbone (None: the same lr on every backbone); TrainConfig.default_lr reads it.
    lr_width_rule_since: ClassVar[int | None] = None
    # The method's default lr on a text decoder, keyed by the defaults generation from which each value holds
    # (before the first: the width rule or the plain default there too); read through decoder_lr_of. Ours
    # (generation 6): 1e-3 for every prompt method (MEPT: its own history, MEPTConfig). On SmolLM2's bb-diverse
    # mixture at 1e-2, prompt tuning and SMoP scored 12.0 and 9.1 below 1e-3 (benchmarks/studies/decoder_prompts.md,
    # "The other prompt methods' lr on a decoder"); VFPT and PT-MoE, not measured there, inherit it.
    decoder_lrs: ClassVar[dict[int, float]] = {6: 1e-3}
    # Methods that prompt the input layer only refuse other ``layers``, pointing at their deep variant.
    input_only: ClassVar[bool] = False
    deep_variant: ClassVar[str | None] = None
    # The method settings ``--paper`` sets (the method paper's stated values, and labelled choices where it states
    # none): a method whose paper is its defaults leaves it empty (MEPT's: MEPTConfig.paper()).
    paper_settings: ClassVar[dict[str, object]] = {}
    # Defaults that changed, keyed by the defaults generation (DEFAULTS_GENERATION) that changed them, with
    # the values they had before: a run saved under an older generation keeps what it trained with.
    changed_defaults: ClassVar[dict[int, dict[str, Any]]] = {3: {"attention_sink": False}}
    prompt_length: int = 10
    layers: str | list[int] = "all"
    init: Init = "xavier_normal"
    # init="previous_knowledge": a trained adapter or run folder whose prompts the new ones start from;
    # init="task_text": text whose token embeddings fill the prompts (None: the training data's text)
    init_from: str | None = None
    train_prompts: bool = True
    # Ours: on a text decoder, one plain token before the prompt slots keeps the backbone's attention sink
    # (mept.inject.spec.sink_columns); False puts the slots at position 0, as the authors' code does.
    attention_sink: bool = True
    # init="hidden_states" (and "auto" on a text decoder): "states" keeps the rows at the backbone's own scale;
    # "xavier" scales each layer's rows to a Xavier-normal prompt's rms (ours: mept.model.states.at_prompt_scale)
    state_init_scale: StateInitScale = "states"

    def __post_init__(self) -> None:
        _positive(self, "prompt_length")
        for name, choices in choice_fields(type(self)).items():  # every choice setting of every method's config
            _choice(self, name, choices)
        for name in bool_fields(type(self)):  # and every on/off setting
            if not isinstance(getattr(self, name), bool):
                raise MeptError(f"{type(self).__name__}.{name} must be true or false, got {getattr(self, name)!r}")
        if self.init == "previous_knowledge":
            if not self.init_from:
                raise MeptError(f"{type(self).__name__}.init_from must name a trained adapter or run folder "
                                "for init='previous_knowledge'")
            from pathlib import Path

            self.init_from = str(Path(self.init_from).expanduser().resolve())  # rebuildable from any directory
        elif self.init_from is not None and self.init != "task_text":
            raise MeptError(f"{type(self).__name__}.init_from applies to init='previous_knowledge' or 'task_text', "
                            f"not init={self.init!r}")
        if isinstance(self.layers, str):
            parse_layers(self.layers, num_layers=None)  # syntax check now, bounds check at wrap time
        elif not (isinstance(self.layers, (list, tuple)) and all(isinstance(i, int) for i in self.layers)):
            raise MeptError(f"{type(self).__name__}.layers must be 'all', '1-6', '1,3,5' or a list of ints")
        if self.input_only and self.layers not in ("1", [1]):
            hint = f"; use {self.deep_variant} for deep prompts" if self.deep_variant else ""
            raise MeptError(f"{type(self).__name__}.layers must be '1' ({self.method} prompts the input only){hint}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PromptConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MeptError(f"unknown {cls.method} setting(s): {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**data)


@dataclass
class RoutedConfig(PromptConfig):
    """Fields every routed method has (SMoP, PT-MoE, MEPT): how its routers are trained.

    ``balance_loss`` weighs the Switch-Transformer load-balancing loss and ``z_loss`` the
    ST-MoE router z-loss (both 0: off; neither the MEPT nor the SMoP paper has them); ``router_lr_scale`` is the
    routers' learning rate relative to the prompts'. Declared once here so every routed method
    reads them the same way (MEPT overrides the default ``balance_loss``: ours, see its config).
    """

    balance_loss: float = 0.0
    z_loss: float = 0.0
    # "auto" (ours): min(1, 384 / d), see router_lr_scale_for; a number fixes the ratio
    router_lr_scale: float | str = "auto"
    # What the router reads (mept.core.routing: layernorm | center | standardize) and how fast its running
    # statistics follow the hidden states (center, standardize). A method's own default may differ (MEPT's).
    router_input: InputNorm = "layernorm"
    router_stats_momentum: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("balance_loss", "z_loss"):
            _non_negative(self, name)
        if self.router_lr_scale != "auto":
            _non_negative(self, "router_lr_scale")
        _positive_number(self, "router_stats_momentum")  # a number first: "abc" is one error, not a TypeError
        if self.router_stats_momentum > 1:
            raise MeptError(f"{type(self).__name__}.router_stats_momentum must be in (0, 1], "
                            f"got {self.router_stats_momentum!r}")

    def router_lr_scale_for(self, hidden_size: int) -> float:
        """The routers' learning rate relative to the prompts' on a backbone of width ``hidden_size``.

        ``auto`` (ours, measured in ``benchmarks/studies/routing_at_scale.md``): AdamW moves each router weight
        by about the lr per step, so a router logit over a layer-normed input of width d moves by
        about ``lr * 0.8 * d`` per step: twice as far on a 768-wide encoder as on the 384-wide MiniLM
        the default lr was tuned on, which saturated the softmax and collapsed MPNet's routers. The
        routers therefore train at ``384 / d`` of the prompts' rate on wider backbones (never faster).
        """
        if self.router_lr_scale == "auto":
            return width_ratio(hidden_size)
        return float(self.router_lr_scale)


REFERENCE_WIDTH = 384  # MiniLM's width, where the prompt methods' defaults were tuned


def width_ratio(hidden_size: int) -> float:
    """``min(1, 384 / d)``: how much slower than on MiniLM an AdamW-trained setting moves on a backbone of width d.

    AdamW moves every weight by about the lr per step whatever its gradient's size, so what a weight vector
    read by a dot product changes per step grows with the width it spans: the router's logits (see
    :meth:`RoutedConfig.router_lr_scale_for`) and, measured on MPNet, MEPT's prompts. Never faster than on
    the backbone the defaults were tuned on (ours).
    """
    return min(1.0, REFERENCE_WIDTH / hidden_size)


def parse_layers(spec: str | list[int], num_layers: int | None) -> list[int]:
    """Turn a 1-based layer spec into sorted 0-based layer indices."""
    if isinstance(spec, (list, tuple)):
        one_based = list(spec)
    elif spec.strip().lower() == "all":
        if num_layers is None:
            return []
        one_based = list(range(1, num_layers + 1))
    else:
        one_based = []
        for part in spec.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    one_based.extend(range(lo, hi + 1))
                else:
                    one_based.append(int(part))
            except ValueError:
                raise MeptError(f"layers: cannot read {spec!r}; use 'all', '1-6', '1,3,5'") from None
    if any(i < 1 for i in one_based):
        raise MeptError(f"layers: {spec!r} has a layer below 1 (layers are 1-based)")
    if num_layers is not None and any(i > num_layers for i in one_based):
        raise MeptError(f"layers: {spec!r} asks for layer {max(one_based)} but the backbone has {num_layers}")
    if not one_based:
        raise MeptError(f"layers: {spec!r} selects no layer")
    return sorted({i - 1 for i in one_based})


def _positive(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MeptError(f"{type(cfg).__name__}.{name} must be a positive integer, got {value!r}")


def choices_of(hint: Any) -> tuple[str, ...] | None:
    """The values a ``Literal[...]`` type (or ``Literal[...] | None``) allows; None for any other type.

    A choice setting is declared once, as a Literal type; its CLI choices and its check derive from it.
    """
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is typing.Literal:
                return typing.get_args(arg)
    return None


@cache
def choice_fields(config_class: type) -> dict[str, tuple[Any, ...]]:
    """The choice settings (``Literal`` fields) of a config dataclass, each with the values it allows: one
    check, derived from the types, for every method's config (and the router's)."""
    hints = typing.get_type_hints(config_class)
    found = {f.name: choices_of(hints[f.name]) for f in dataclasses.fields(config_class)}
    return {name: values for name, values in found.items() if values is not None}


@cache
def bool_fields(config_class: type) -> tuple[str, ...]:
    """The on/off settings (``bool`` fields) of a config dataclass: one check for every method's config, so
    ``--set train_router=maybe`` is one error, not a truthy string or a TypeError deep in the model."""
    hints = typing.get_type_hints(config_class)
    return tuple(f.name for f in dataclasses.fields(config_class) if hints[f.name] is bool)


def check_choice(name: str, value: Any, choices: tuple[str, ...], none_ok: bool = False) -> None:
    """One error for a value outside a choice setting's values, naming the setting and every value."""
    if value in choices or (none_ok and value is None):
        return
    allowed = " or ".join(repr(c) for c in choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
    raise MeptError(f"{name} must be {allowed}, got {value!r}")


def _choice(cfg: object, name: str, options: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in options:
        raise MeptError(f"{type(cfg).__name__}.{name} must be one of {', '.join(options)}, got {value!r}")


def _positive_number(cfg: object, name: str) -> None:
    """A finite number > 0: what a setting that divides (a temperature, Gumbel's tau) must be."""
    value = getattr(cfg, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):  # NaN fails
        raise MeptError(f"{type(cfg).__name__}.{name} must be a finite number > 0, got {value!r}")


def _non_negative(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):  # NaN fails >= 0
        raise MeptError(f"{type(cfg).__name__}.{name} must be a number >= 0, got {value!r}")
