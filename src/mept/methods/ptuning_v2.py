"""P-Tuning v2 (Liu et al., 2022), as framed by the MEPT paper: a separate prompt at every layer
("injecting distinct prompt embeddings into each Transformer layer", its Appendix B.2; 100 prompts, B.6).

The original inserts per-layer prefix key/values; like the MEPT authors' code
we insert per-layer prompt tokens through the shared slot mechanism. 100 prompt
tokens is the MEPT paper's length for it (Appendix B.6).
"""

from __future__ import annotations

from dataclasses import dataclass

from mept.core.config import Init, PromptConfig
from mept.core.registry import register_method
from mept.methods.base import DeepPrompts


@dataclass
class PTuningV2Config(PromptConfig):
    method = "ptuning_v2"
    changed_defaults = {3: {"init": "xavier_normal"}}
    prompt_length: int = 100
    # ours: hidden_states on a text decoder, Xavier normal elsewhere (mept.model.states; the same rule as MEPT's)
    init: Init = "auto"


@register_method
class PTuningV2(DeepPrompts):
    config_class = PTuningV2Config
