"""Full fine-tuning: every backbone weight trained, in the same harness as the prompt methods.

The reference point of the MEPT paper's Table 1 (first row). The checkpoint is the whole model in
Hugging Face's layout (``config.json`` + ``model.safetensors``; ``AutoModelFor...from_pretrained``
loads it), so every checkpoint is the backbone's size -- and the resumable one adds AdamW's two
moments, twice that again. Our default rate, 3e-5, is the usual BERT-family fine-tuning rate
(Devlin et al., 2019 searched 2e-5 to 5e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torch import nn

from mept.baselines.base import BaselineConfig, BaselineModel, load_tensors
from mept.core.registry import register_baseline
from mept.errors import MeptError, warn

WEIGHTS = "model.safetensors"


@dataclass
class FullConfig(BaselineConfig):
    method: ClassVar[str] = "full"
    paper_lr_grid: ClassVar[tuple[float, ...]] = (1e-5, 3e-5, 1e-4)  # ours: the MEPT paper states no grid for it
    default_lr: ClassVar[float] = 3e-5
    compare_lr_grid: ClassVar[tuple[float, ...]] = (1e-5, 3e-5, 1e-4)


@register_baseline
class FullFineTuning(BaselineModel):
    config_class = FullConfig
    can_disable = False  # every weight changed: no frozen backbone left to compare with

    def build(self, backbone: nn.Module, config: FullConfig) -> nn.Module:
        backbone.requires_grad_(True)
        size = sum(p.numel() * p.element_size() for p in backbone.parameters()) / 2**20
        if size > 200:
            warn(f"full fine-tuning saves the whole model ({size:,.0f} MB) in every checkpoint, and the "
                 f"resumable one adds the optimizer's {2 * size:,.0f} MB")
        return backbone

    def save_weights(self, folder: Path) -> None:
        import transformers

        transformers.logging.disable_progress_bar()  # a "Writing model shards" bar at every checkpoint is noise
        try:
            self.net.save_pretrained(str(folder))  # config.json + model.safetensors (tied weights once)
        finally:
            transformers.logging.enable_progress_bar()

    def load_weights(self, folder: Path) -> None:
        state = load_tensors(folder / WEIGHTS)
        expected = self.net.state_dict()
        extra = sorted(set(state) - set(expected))
        if extra:
            raise MeptError(f"{len(extra)} unexpected tensor(s), e.g. {extra[0]}")
        wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
        if wrong:
            raise MeptError(f"tensor {wrong[0]} has shape {tuple(state[wrong[0]].shape)} in the file, but this model "
                            f"expects {tuple(expected[wrong[0]].shape)}")
        self.net.load_state_dict(state, strict=False)  # tied weights are saved once; the tie fills the rest
        missing = [k for k in set(expected) - set(state) if not _tied(self.net, k, state)]
        if missing:
            raise MeptError(f"missing {len(missing)} tensor(s), e.g. {sorted(missing)[0]}")


def _tied(model: nn.Module, key: str, state: dict) -> bool:
    """Is ``key`` a tensor that shares storage with a saved one (tied embeddings), or a buffer HF does not save?"""
    tensors = model.state_dict(keep_vars=True)
    ptr = tensors[key].data_ptr()
    if any(tensors[k].data_ptr() == ptr for k in state if k in tensors):
        return True
    return key not in dict(model.named_parameters())  # non-persistent-like buffers (position ids)
