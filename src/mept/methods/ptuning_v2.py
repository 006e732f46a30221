"""P-Tuning v2 (Liu et al., 2022), as framed by the MEPT paper: a separate prompt at every layer
("injecting distinct prompt embeddings into each Transformer layer", its Appendix B.2; 100 prompts, B.6).

The original inserts per-layer prefix key/values; like the MEPT authors' code
we insert per-layer prompt tokens through the shared slot mechanism. 100 prompt
tokens is the MEPT paper's length for it (Appendix B.6).
"""

from __future__ import annotations

from dataclasses import dataclass

from mept.core.config import PromptConfig
from mept.core.registry import register_method
from mept.methods.base import DeepPrompts


@dataclass
class PTuningV2Config(PromptConfig):
    method = "ptuning_v2"
    prompt_length: int = 100


@register_method
class PTuningV2(DeepPrompts):
    config_class = PTuningV2Config
