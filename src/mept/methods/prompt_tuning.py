"""Prompt Tuning (Lester et al., 2021): one soft prompt of m tokens at the input."""

from __future__ import annotations

from dataclasses import dataclass

from mept.core.config import PromptConfig
from mept.core.registry import register_method
from mept.methods.base import DeepPrompts


@dataclass
class PromptTuningConfig(PromptConfig):
    method = "prompt_tuning"
    input_only = True
    deep_variant = "ptuning_v2"
    layers: str | list[int] = "1"


@register_method
class PromptTuning(DeepPrompts):
    config_class = PromptTuningConfig
