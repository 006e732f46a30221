"""What every model the harness trains offers: :class:`AdapterModel`, as torchtune's ``AdapterModule``.

Two classes implement it: :class:`~mept.model.prompted.PromptedModel` (a prompt method in a frozen
backbone) and :class:`~mept.baselines.base.BaselineModel` (LoRA, full fine-tuning, a linear probe).
The harness (train, evaluate, checkpoint, report) talks only to this protocol; the baselines
implement it without importing it (a Protocol is structural), so they stay below this layer.
``tests/test_architecture.py`` checks that both satisfy it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypedDict, runtime_checkable

import torch
from torch import nn

from mept.inject.spec import BackboneSpec


class ParameterReport(TypedDict, total=False):
    """``parameter_report()``: stored and per-example parameter counts (``mept params``, metrics.json)."""

    method: str
    trainable: int  # stored and trained
    prompt: int
    router: int
    adapter: int  # baselines only: LoRA matrices, or every backbone weight (full fine-tuning)
    head: int
    backbone: int
    trainable_percent: float
    activated: int  # what one example uses
    activated_prompt: int
    activated_router: int
    activated_percent: float
    prompted_layers: int
    activated_prompt_tokens_per_layer: int
    activated_prompt_tokens: int


@runtime_checkable
class AdapterModel(Protocol):
    """A backbone with trainable adapter weights: what it owns, how it trains, reports, saves and loads.

    ``prompt_config`` is the method's config (a prompt method's or a baseline's); ``routed_layers``
    the 1-based layers whose routes a prediction reports (empty when nothing routes).
    """

    prompt_config: Any
    spec: BackboneSpec
    head_names: list[str]
    head_pooling: str
    head: str  # "native" or "linear" (mept.inject.heads.install_head)

    @property
    def backbone(self) -> nn.Module: ...

    @property
    def num_slots(self) -> int: ...

    @property
    def reserved_positions(self) -> int:
        """Positions an input needs beyond its text: the prompt slots and any sink column."""
        ...

    @property
    def prompt_init(self) -> dict[str, str] | None:
        """The prompts' initialisation asked for and the one run (``{"asked", "ran"}``); None without prompts."""
        ...

    @property
    def routed(self) -> bool: ...

    @property
    def routed_layers(self) -> list[int]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any: ...

    def disabled(self) -> AbstractContextManager[Any]: ...

    def gradient_checkpointing_enable(self) -> None: ...

    def owns(self, key: str) -> bool: ...

    def adapter_parameters(self) -> dict[str, nn.Parameter]: ...

    def param_groups(self, lr: float, head_lr: float) -> list[dict[str, Any]]: ...

    def parameter_report(self) -> ParameterReport: ...

    def print_trainable_parameters(self) -> None: ...

    def save_pretrained(self, path: str | os.PathLike) -> None: ...

    def load_adapter(self, path: str | os.PathLike, check_config: bool = False) -> None: ...

    # nn.Module's, used by the harness
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, nn.Parameter]]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

