"""Prompt Tuning (Lester et al., 2021): one soft prompt of m tokens at the input."""

from __future__ import annotations

from dataclasses import dataclass

from mept.config import PromptConfig
from mept.methods.base import DeepPrompts
from mept.registry import register_method


@dataclass
class PromptTuningConfig(PromptConfig):
    method = "prompt_tuning"
    input_only = True
    deep_variant = "ptuning_v2"
    layers: str | list[int] = "1"


@register_method
class PromptTuning(DeepPrompts):
    config_class = PromptTuningConfig
