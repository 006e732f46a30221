"""Linear probe: the task head trained on frozen, mean-pooled features -- the cheapest honest baseline.

The backbone is frozen and nothing is inserted; the head reads the mean of the final hidden states
over real tokens, exactly what the prompt methods' heads read. The head is the backbone's own
(a linear layer for BERT-family models such as MiniLM; RoBERTa and MPNet heads have a hidden
layer first). It trains at ``--lr`` (the method's only rate; ``--head-lr`` is not used).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from mept.baselines.base import BaselineConfig, BaselineModel, load_tensors, save_tensors
from mept.core.registry import register_baseline
from mept.errors import MeptError

WEIGHTS = "model.safetensors"


@dataclass
class ProbeConfig(BaselineConfig):
    method: ClassVar[str] = "probe"
    paper_lr_grid: ClassVar[tuple[float, ...]] = (3e-3, 1e-2, 3e-2)  # ours: the MEPT paper states no grid for it
    default_lr: ClassVar[float] = 1e-2  # the prompt methods' --head-lr
    compare_lr_grid: ClassVar[tuple[float, ...]] = (3e-3, 1e-2, 3e-2)


@register_baseline
class LinearProbe(BaselineModel):
    config_class = ProbeConfig

    def build(self, backbone: nn.Module, config: ProbeConfig) -> nn.Module:
        if not self.head_names:
            raise MeptError("probe trains the task head, but this backbone has none: it needs a classification "
                            "model (--format cls, where the backbone has one), or leave probe out")
        backbone.requires_grad_(False)
        for name in self.head_names:
            backbone.get_submodule(name).requires_grad_(True)
        return backbone

    def param_groups(self, lr: float, head_lr: float) -> list[dict[str, Any]]:
        return super().param_groups(lr, lr)  # the head is all there is: it trains at --lr

    def save_weights(self, folder: Path) -> None:
        save_tensors({k: v for k, v in self.net.state_dict().items() if self.owns("net." + k)}, folder / WEIGHTS)

    def load_weights(self, folder: Path) -> None:
        state = load_tensors(folder / WEIGHTS)
        expected = {k: v for k, v in self.net.state_dict().items() if self.owns("net." + k)}
        if set(state) != set(expected):
            diff = sorted(set(state) ^ set(expected))
            raise MeptError(f"the file's tensors are not this probe's head, e.g. {diff[0]}")
        for k, v in state.items():
            if tuple(v.shape) != tuple(expected[k].shape):
                raise MeptError(f"tensor {k} has shape {tuple(v.shape)} in the file, but this model expects "
                                f"{tuple(expected[k].shape)}")
        self.net.load_state_dict(state, strict=False)

    def disabled(self):
        """The probe never changes the backbone: its frozen features are the baseline's."""
        import contextlib

        return contextlib.nullcontext(self)
