"""LoRA (Hu et al., 2022), DoRA (Liu et al., 2024) and IA3 (Liu et al., 2022) through Hugging Face PEFT.

The real ``peft`` library does the injection, so the numbers are what a PEFT user gets; mept adds
only what the harness needs (same data, label space, head and head pooling as the prompt methods).
The task head is trained and saved through PEFT's ``modules_to_save``, and the checkpoint folder is
PEFT's own: ``PeftModel.from_pretrained(backbone, folder)`` loads it.

Settings are ours unless named: ``r=8`` on PEFT's default target modules for the architecture
(query and value projections for BERT, T5 and Llama -- the LoRA paper's choice), ``lora_alpha=16``,
no dropout (so a run repeats bit for bit; PEFT's default is also 0). Where PEFT has no default for
the architecture (MPNet among them), ours is the same choice found by name: the attention's query
and value projections (``q`` / ``v`` in MPNet); IA3 gets keys, values and the feed-forward output.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torch import nn

from mept.baselines.base import BaselineConfig, BaselineModel, load_tensors
from mept.core.config import _non_negative, _positive
from mept.core.registry import register_baseline
from mept.errors import MeptError, exception_line


@dataclass
class LoRAConfig(BaselineConfig):
    method: ClassVar[str] = "lora"
    paper_lr_grid: ClassVar[tuple[float, ...]] = (1e-4, 5e-4, 1e-3)  # ours: the MEPT paper states no grid for LoRA
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] | None = None  # None: PEFT's default for the architecture (q and v)

    def __post_init__(self) -> None:
        _positive(self, "r")
        _positive(self, "lora_alpha")
        _non_negative(self, "lora_dropout")
        if self.lora_dropout >= 1:
            raise MeptError(f"{type(self).__name__}.lora_dropout must be below 1, got {self.lora_dropout!r}")
        if self.target_modules is not None and not (
                isinstance(self.target_modules, list) and all(isinstance(t, str) for t in self.target_modules)):
            raise MeptError(f"{type(self).__name__}.target_modules must be a list of module names")

    def peft_config(self, modules_to_save: list[str], backbone: nn.Module | None = None):
        import peft

        targets = self.target_modules
        if targets is None and backbone is not None and not _peft_has_default(backbone, "lora"):
            targets = _find_linear_pair(backbone, _QUERY_VALUE, self.method, "query and value")
        return peft.LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                               target_modules=targets, modules_to_save=modules_to_save or None)


@dataclass
class DoRAConfig(LoRAConfig):
    """LoRA with the weight split into magnitude and direction (PEFT's ``use_dora=True``)."""

    method: ClassVar[str] = "dora"

    def peft_config(self, modules_to_save: list[str], backbone: nn.Module | None = None):
        config = super().peft_config(modules_to_save, backbone)
        config.use_dora = True
        return config


@dataclass
class IA3Config(BaselineConfig):
    """IA3: learned scaling vectors on keys, values and the feed-forward input (PEFT's defaults)."""

    method: ClassVar[str] = "ia3"
    default_lr: ClassVar[float] = 3e-3
    compare_lr_grid: ClassVar[tuple[float, ...]] = (1e-3, 3e-3, 1e-2)
    target_modules: list[str] | None = None
    feedforward_modules: list[str] | None = None

    def peft_config(self, modules_to_save: list[str], backbone: nn.Module | None = None):
        import peft

        targets, feedforward = self.target_modules, self.feedforward_modules
        if targets is None and backbone is not None and not _peft_has_default(backbone, "ia3"):
            feedforward = feedforward or [_find_linear(backbone, _FEEDFORWARD_OUT, self.method, "feed-forward output")]
            targets = _find_linear_pair(backbone, _KEY_VALUE, self.method, "key and value") + feedforward
        return peft.IA3Config(target_modules=targets, feedforward_modules=feedforward,
                              modules_to_save=modules_to_save or None)


# Projection names by architecture family, for backbones PEFT has no default targets for (ours).
_QUERY_VALUE = (("q_proj", "v_proj"), ("query", "value"), ("q", "v"), ("q_lin", "v_lin"), ("query_proj", "value_proj"))
_KEY_VALUE = (("k_proj", "v_proj"), ("key", "value"), ("k", "v"), ("k_lin", "v_lin"), ("key_proj", "value_proj"))
_FEEDFORWARD_OUT = ("down_proj", "output.dense", "fc2", "wo", "lin2")


def _peft_has_default(backbone: nn.Module, tuner: str) -> bool:
    from peft.utils import constants

    table = {"lora": constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
             "ia3": constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING}[tuner]
    return getattr(getattr(backbone, "config", None), "model_type", None) in table


def _linear_names(backbone: nn.Module) -> list[str]:
    return [name for name, module in backbone.named_modules() if isinstance(module, nn.Linear)]


def _find_linear_pair(backbone: nn.Module, pairs, method: str, what: str) -> list[str]:
    leaves = {name.rsplit(".", 1)[-1] for name in _linear_names(backbone)}
    for first, second in pairs:
        if first in leaves and second in leaves:
            return [first, second]
    raise _no_default(backbone, method, what)


def _find_linear(backbone: nn.Module, suffixes, method: str, what: str) -> str:
    names = _linear_names(backbone)
    for suffix in suffixes:
        if any(name == suffix or name.endswith("." + suffix) for name in names):
            return suffix
    raise _no_default(backbone, method, what)


def _no_default(backbone: nn.Module, method: str, what: str) -> MeptError:
    model_type = getattr(getattr(backbone, "config", None), "model_type", "this model")
    return MeptError(f"{method}: PEFT has no default target modules for {model_type} and no {what} projections "
                     f"were found by name; name them, e.g. --set 'target_modules=[\"q\", \"v\"]'")


class PeftBaseline(BaselineModel):
    """The backbone wrapped by ``peft.get_peft_model``; only PEFT's trainable tensors are owned."""

    def build(self, backbone: nn.Module, config: LoRAConfig) -> nn.Module:
        import peft

        try:
            with warnings.catch_warnings():  # PEFT calls a transformers name deprecated in v5; not the user's concern
                warnings.simplefilter("ignore", FutureWarning)
                return peft.get_peft_model(backbone, config.peft_config(self.head_names, backbone))
        except ValueError as exc:  # e.g. target modules not found in this architecture
            raise MeptError(f"{config.method}: {exception_line(exc)}") from None

    def base_model(self) -> nn.Module:
        return self.net.get_base_model()

    def save_weights(self, folder: Path) -> None:
        self.net.save_pretrained(str(folder))  # adapter_config.json + adapter_model.safetensors, PEFT's layout

    def load_weights(self, folder: Path) -> None:
        import peft

        state = load_tensors(folder / "adapter_model.safetensors")
        result = peft.set_peft_model_state_dict(self.net, state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        missing = [k for k in getattr(result, "missing_keys", []) or [] if self.owns(k)]
        if unexpected or missing:
            first = (unexpected or missing)[0]
            raise MeptError(f"{len(unexpected)} unexpected and {len(missing)} missing tensor(s), e.g. {first}")

    def disabled(self):
        """The bare backbone (PEFT's ``disable_adapter``; the head pooling stays the run's)."""
        return self.net.disable_adapter()


@register_baseline
class LoRA(PeftBaseline):
    config_class = LoRAConfig


@register_baseline
class DoRA(PeftBaseline):
    config_class = DoRAConfig


@register_baseline
class IA3(PeftBaseline):
    config_class = IA3Config
