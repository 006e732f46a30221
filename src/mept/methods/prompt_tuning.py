"""Prompt Tuning (Lester et al., 2021): one soft prompt of m tokens at the input."""

from __future__ import annotations

from dataclasses import dataclass

from mept.config import PromptConfig
from mept.errors import MeptError
from mept.methods.base import DeepPrompts
from mept.registry import register_method


@dataclass
class PromptTuningConfig(PromptConfig):
    method = "prompt_tuning"
    layers: str | list[int] = "1"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers not in ("1", [1]):
            raise MeptError("PromptTuningConfig.layers must be '1' (input only); use ptuning_v2 for deep prompts")


@register_method
class PromptTuning(DeepPrompts):
    config_class = PromptTuningConfig
