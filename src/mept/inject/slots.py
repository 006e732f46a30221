"""The one injection mechanism every method shares: reserved prompt slots.

``m`` slot positions are reserved in the sequence (attention mask 1) at
``offset`` (after CLS for encoders and ViT, at 0 for decoders and T5). A
forward pre-hook on each prompted layer overwrites the slots with that
layer's prompts before the layer runs; other layers pass the slots through.
Sequence length, position handling (absolute, relative bias, rotary) and
masks therefore stay valid for every architecture, and gradient
checkpointing works because the hook sits outside the checkpointed forward.

Routing reads the layer's input hidden state over real tokens only
(``pool_mask``); each router normalises it as configured (:mod:`mept.routing`).

When ``layers`` does not start at 1 (e.g. ``"7-12"``), the slots exist from
the input on and real tokens attend to them in the layers below the first
prompted one. There they are m extra tokens that the mask does not hide:
they start as the slot token's embedding (the pad token's at those
positions; zeros for images), the same for every input, and then evolve as
any token would (in a decoder they precede the text and stay input-
independent; in an encoder they also attend to it), until the first
prompted layer overwrites them. We keep them rather
than mask them out: Hugging Face builds one attention mask for all layers,
in a different form per architecture and attention kernel (4-D additive,
boolean, SDPA's ``is_causal``, flash attention's 2-D, none for ViT), so a
per-layer mask would mean per-architecture code; inserting the slots only
at the first prompted layer would change the sequence length after
positions and masks were built. ``tests/test_injection.py`` checks that the
layers below see exactly the backbone run on text with m slot tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from mept.methods.base import PromptMethod
from mept.routing import masked_mean


@dataclass
class SlotContext:
    """Per-forward state the hooks read: which positions are real text, and the prompt's length.

    ``total_len`` is the length of the slotted prompt sequence. Hidden states
    shorter than it come from cached decoding steps (the slots already live in
    the KV cache, so nothing is injected); longer ones come from uncached
    generation, where only the first ``total_len`` positions are pooled so
    routing is decided by the prompt alone, exactly as with the cache.
    """

    pool_mask: torch.Tensor  # (B, total_len): 1 on real input tokens, 0 on slots and padding
    total_len: int


class SlotInjector:
    def __init__(self, method: PromptMethod, layers: nn.ModuleList, offset: int) -> None:
        self.method = method
        self.offset = offset
        self.ctx: SlotContext | None = None
        self.enabled = True  # False: every hook passes through (PromptedModel.disabled)
        self.handles = [
            layers[layer_id].register_forward_pre_hook(partial(self._before_layer, position), with_kwargs=True)
            for position, layer_id in enumerate(method.layer_ids)
        ]

    @property
    def num_slots(self) -> int:
        return self.method.num_slots

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _before_layer(self, position: int, module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        ctx = self.ctx
        if ctx is None or not self.enabled:
            return None  # the backbone is being used on its own
        in_kwargs = not args
        hidden = kwargs["hidden_states"] if in_kwargs else args[0]  # (B, T, d)
        if hidden.shape[1] < ctx.total_len:
            return None  # cached decoding step
        pooled = None
        if self.method.routed:
            text = hidden if hidden.shape[1] == ctx.total_len else hidden[:, : ctx.total_len]
            pooled = masked_mean(text, ctx.pool_mask).float()  # (B, d); the router normalises it
        prompts = self.method.prompt(position, pooled, hidden.shape[0]).to(hidden.dtype)  # (B, m, d)
        # one copy forward and one backward (a cat of slices allocates and adds full-size gradients)
        hidden = hidden.slice_scatter(prompts, dim=1, start=self.offset, end=self.offset + self.num_slots)
        if in_kwargs:
            return args, {**kwargs, "hidden_states": hidden}
        return (hidden, *args[1:]), kwargs

    # --- building slotted inputs -------------------------------------------------

    def insert(self, x: torch.Tensor, fill: float | int) -> torch.Tensor:
        """Insert m slot columns filled with ``fill`` at the offset: (B, T, ...) -> (B, T + m, ...)."""
        o, m = self.offset, self.num_slots
        slots = torch.full((x.shape[0], m, *x.shape[2:]), fill, dtype=x.dtype, device=x.device)
        return torch.cat([x[:, :o], slots, x[:, o:]], dim=1)

    def remove_slots(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        o, m = self.offset, self.num_slots
        if o == 0:  # decoders and T5: a view, no copy of (possibly vocabulary-sized) outputs
            return x.narrow(dim, m, x.shape[dim] - m)
        keep = torch.cat([torch.arange(o), torch.arange(o + m, x.shape[dim])]).to(x.device)
        return x.index_select(dim, keep)

    @contextmanager
    def active(self, text_mask: torch.Tensor | None) -> Iterator[SlotContext | None]:
        """The state of one forward: routes of the last forward cleared, slots filled until the block ends.

        ``text_mask`` (B, T) is the unslotted attention mask; ``None`` when the mask is only known
        inside the forward (images: the embeddings hook calls :meth:`begin`).
        """
        self.method.routes.clear()
        try:
            yield self.begin(text_mask) if text_mask is not None else None
        finally:
            self.end()

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Every hook passes through: the backbone runs bare, with no slots and no prompts."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    def begin(self, text_mask: torch.Tensor) -> SlotContext:
        """Start a forward: ``text_mask`` (B, T) is the unslotted attention mask."""
        pool_mask = self.insert(text_mask, 0)
        self.ctx = SlotContext(pool_mask=pool_mask, total_len=pool_mask.shape[1])
        return self.ctx

    def end(self) -> None:
        self.ctx = None
