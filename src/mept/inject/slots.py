"""The one injection mechanism every method shares: reserved prompt slots.

Everything about slots lives here: inserting them (text inputs, a causal LM's labels, image
embeddings), filling them with prompts, and stripping them from outputs. What a classification
head reads is :mod:`mept.inject.heads`.

``m`` slot positions are reserved in the sequence (attention mask 1) at
``offset`` (after CLS for encoders and ViT, at 0 for decoders and T5). A
forward pre-hook on each prompted layer overwrites the slots with that
layer's prompts before the layer runs; other layers pass the slots through.
On a text decoder one plain column (``sink``) comes first and is never
overwritten: a decoder's first position is its attention sink, and a slot
rewritten there before every layer would never become one
(:func:`mept.inject.spec.sink_columns`).
Sequence length, position handling (absolute, relative bias, rotary) and
masks therefore stay valid for every architecture.

One forward's state (which positions are real text, the routes taken) is a
:class:`ForwardState` held in a :class:`contextvars.ContextVar` for the
duration of :meth:`SlotInjector.forward`, never an attribute: each thread (and
each asyncio task) sees its own, so concurrent forwards on one model do not mix,
and nothing of one forward is left for the next to read.

Gradient checkpointing: transformers 5 checkpoints a layer's ``forward``, so
the hook runs outside and is never recomputed; transformers 4.57 checkpoints
``__call__``, so the hook runs again when the backward pass recomputes the
layer, after the forward's context has ended. :func:`bind_checkpointing`
wraps a module's checkpoint function so the recomputation re-enters the
forward's state (marked ``recompute``: routes are not recorded again, router
statistics do not move again; torch restores the RNG state, its default
``preserve_rng_state=True``, so noisy routings choose the same experts).

Routing reads the layer's input hidden state over real tokens only
(``pool_mask``); each router normalises it as configured (:mod:`mept.core.routing`).

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

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from mept.core.routing import Route, masked_mean
from mept.methods.base import PromptMethod


@dataclass
class ForwardState:
    """One forward's state, read by the hooks: which positions are real text, the prompt's length, the routes.

    ``total_len`` is the length of the slotted prompt sequence. Hidden states
    shorter than it come from cached decoding steps (the slots already live in
    the KV cache, so nothing is injected); longer ones come from uncached
    generation, where only the first ``total_len`` positions are pooled so
    routing is decided by the prompt alone, exactly as with the cache.
    ``method`` is the prompt method of the model whose forward this is (a
    ``DataParallel`` replica's own, not the hooks' owner's).
    """

    injector: "SlotInjector"
    method: PromptMethod
    pool_mask: torch.Tensor | None  # (B, total_len): 1 on real input tokens, 0 on slots and padding
    total_len: int = 0
    recompute: bool = False  # gradient checkpointing's second run of this forward
    routes: dict[int, Route] = field(default_factory=dict)  # layer id -> route, graph attached

    def begin(self, text_mask: torch.Tensor) -> None:
        """Set the real-text mask once it is known: ``text_mask`` (B, T) is the unslotted attention mask."""
        self.pool_mask = self.injector.insert(text_mask, 0)
        self.total_len = self.pool_mask.shape[1]

    def replay(self) -> "ForwardState":
        """The same forward, as gradient checkpointing recomputes it: nothing recorded, statistics frozen."""
        return ForwardState(self.injector, self.method, self.pool_mask, self.total_len, recompute=True)


_FORWARD: ContextVar[ForwardState | None] = ContextVar("mept_forward", default=None)
_DISABLED: ContextVar[tuple["SlotInjector", ...]] = ContextVar("mept_disabled", default=())


def current_forward() -> ForwardState | None:
    """The state of the prompted forward running in this context (any injector's), or None."""
    return _FORWARD.get()


class SlotInjector:
    def __init__(self, method: PromptMethod, layers: nn.ModuleList, offset: int, sink: int = 0) -> None:
        self.method = method  # only for num_slots and layer ids; prompts come from the forward's state
        self.offset = offset
        self.sink = sink  # plain columns before the slots that no prompt overwrites (mept.inject.spec.sink_columns)
        self.handles = [
            layers[layer_id].register_forward_pre_hook(partial(self._before_layer, position), with_kwargs=True)
            for position, layer_id in enumerate(method.layer_ids)
        ]

    @property
    def num_slots(self) -> int:
        return self.method.num_slots

    @property
    def width(self) -> int:
        """Columns inserted into the sequence: the sink columns and the prompt slots."""
        return self.sink + self.num_slots

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    @property
    def enabled(self) -> bool:
        """False inside :meth:`disabled` (in this thread): the model runs the bare backbone."""
        return self not in _DISABLED.get()

    def current(self, begun: bool = True) -> ForwardState | None:
        """The state of the forward running in this context, if it is this injector's (and has ``begun``)."""
        state = _FORWARD.get()
        if state is None or state.injector is not self or (begun and state.pool_mask is None):
            return None
        return state

    def _before_layer(self, position: int, module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        state = self.current()
        if state is None:
            return None  # the backbone is being used on its own
        in_kwargs = not args
        hidden = kwargs["hidden_states"] if in_kwargs else args[0]  # (B, T, d)
        if hidden.shape[1] < state.total_len:
            return None  # cached decoding step
        method = state.method
        pooled = None
        if method.routed:
            text = hidden if hidden.shape[1] == state.total_len else hidden[:, : state.total_len]
            pooled = masked_mean(text, state.pool_mask).float()  # (B, d); the router normalises it
        prompts, route = method.prompt(position, pooled, hidden.shape[0], update_stats=not state.recompute)
        if route is not None and not state.recompute:
            state.routes[method.layer_ids[position]] = route
        prompts = prompts.to(hidden.dtype)  # (B, m, d)
        # one copy forward and one backward (a cat of slices allocates and adds full-size gradients)
        start = self.offset + self.sink
        hidden = hidden.slice_scatter(prompts, dim=1, start=start, end=start + self.num_slots)
        if in_kwargs:
            return args, {**kwargs, "hidden_states": hidden}
        return (hidden, *args[1:]), kwargs

    def pool_mask(self) -> torch.Tensor | None:
        """The running forward's (B, T) mask of real tokens, if the forward is this injector's (head pooling)."""
        state = self.current()
        return None if state is None else state.pool_mask

    def hook_image_slots(self, embeddings: nn.Module) -> None:
        """Images: insert the slots right after ``embeddings`` (ViT's), which also begins the forward's state."""
        self.handles.append(embeddings.register_forward_hook(self._insert_image_slots))

    def _insert_image_slots(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # ViT embeddings (B, 1 + P, d) -> (B, 1 + m + P, d); slots are filled by the first prompted layer.
        state = self.current(begun=False)
        if state is None:
            return output
        state.begin(torch.ones(output.shape[:2], dtype=torch.long, device=output.device))
        return self.insert(output, 0.0)

    # --- building slotted inputs -------------------------------------------------

    def slotted_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slot_token_id: int,
        task_type: str,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """A text backbone's inputs with the m slots inserted: (B, T) -> (B, T + m) each.

        Slots are attended (mask 1), of token type 0; a causal LM's labels get -100 there
        (:meth:`slot_labels`), other labels are per example or on the decoder side and stay as given.
        """
        slotted = {"input_ids": self.insert(input_ids, slot_token_id), "attention_mask": self.insert(attention_mask, 1)}
        if token_type_ids is not None:
            slotted["token_type_ids"] = self.insert(token_type_ids, 0)
        if labels is not None:
            slotted["labels"] = self.slot_labels(labels) if task_type == "causal_lm" else labels
        return slotted

    def insert(self, x: torch.Tensor, fill: float | int) -> torch.Tensor:
        """Insert the sink and m slot columns, filled with ``fill``, at the offset: (B, T, ...) -> (B, T + width, ...)."""
        o, m = self.offset, self.width
        slots = torch.full((x.shape[0], m, *x.shape[2:]), fill, dtype=x.dtype, device=x.device)
        return torch.cat([x[:, :o], slots, x[:, o:]], dim=1)

    def remove_slots(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        o, m = self.offset, self.width
        if o == 0:  # decoders and T5: a view, no copy of (possibly vocabulary-sized) outputs
            return x.narrow(dim, m, x.shape[dim] - m)
        keep = torch.cat([torch.arange(o), torch.arange(o + m, x.shape[dim])]).to(x.device)
        return x.index_select(dim, keep)

    def slot_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """A causal LM's labels with slots: (B, T) -> (B, T + width), the slots, the sink and the first text token -100.

        Slots carry no target, and the first token is no target either: the bare backbone has no
        position that predicts it, so the loss stays the one computed from the returned logits.
        """
        labels = self.insert(labels, -100)
        labels[:, self.offset + self.width] = -100
        return labels

    def strip_outputs(self, out: Any, task_type: str) -> None:
        """Remove the slots from ``out``'s token-level outputs in place (hidden states, attentions, causal
        logits; the encoder side of seq2seq), so callers see the backbone's shapes."""
        token_keys = ("encoder_last_hidden_state", "encoder_hidden_states", "encoder_attentions")
        if task_type != "seq2seq":
            token_keys = ("last_hidden_state", "hidden_states", "attentions")
            if task_type == "causal_lm":
                token_keys += ("logits",)
        for key in token_keys:
            value = out.get(key)
            if value is None:
                continue
            if isinstance(value, tuple):
                out[key] = tuple(self._strip(v, key) for v in value)
            else:
                out[key] = self._strip(value, key)

    def strip_generated(self, out: Any, task_type: str) -> Any:
        """A generation's sequences without the slots (a causal LM's sequences start with them), in place."""
        if task_type != "causal_lm":
            return out
        if isinstance(out, torch.Tensor):
            return self.remove_slots(out, dim=1)
        out.sequences = self.remove_slots(out.sequences, dim=1)
        return out

    def _strip(self, value: torch.Tensor, key: str) -> torch.Tensor:
        value = self.remove_slots(value, dim=1 if "attentions" not in key else 2)
        return self.remove_slots(value, dim=3) if "attentions" in key else value

    @contextmanager
    def forward(self, method: PromptMethod, text_mask: torch.Tensor | None) -> Iterator[ForwardState]:
        """The state of one forward, current in this context until the block ends.

        ``text_mask`` (B, T) is the unslotted attention mask; ``None`` when the mask is only known
        inside the forward (images: the embeddings hook calls :meth:`ForwardState.begin`).
        """
        state = ForwardState(self, method, None)
        if text_mask is not None:
            state.begin(text_mask)
        token = _FORWARD.set(state)
        try:
            yield state
        finally:
            _FORWARD.reset(token)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Every hook passes through, in this context: the backbone runs bare, with no slots and no prompts."""
        token = _DISABLED.set((*_DISABLED.get(), self))
        try:
            yield
        finally:
            _DISABLED.reset(token)


def bind_checkpointing(module: nn.Module) -> None:
    """Make ``module``'s gradient-checkpoint function re-enter the forward's state when it recomputes.

    Idempotent, and a no-op for modules without one. The checkpoint runs non-reentrant whatever
    was asked (ours): reentrant checkpointing runs the first pass without autograd, so tensors
    made inside the checkpointed call -- transformers 4.57 runs the prompt hook there -- would
    get a gradient only through an input that happens to require one.
    """
    original = getattr(module, "_gradient_checkpointing_func", None)
    if original is None or getattr(original, "_mept_bound", False):
        return
    if isinstance(original, functools.partial):  # transformers' partial(checkpoint, **kwargs)
        original = functools.partial(original.func, *original.args, **{**original.keywords, "use_reentrant": False})
    module._gradient_checkpointing_func = _bound(original)


def _bound(checkpoint: Callable[..., Any]) -> Callable[..., Any]:
    def bound_checkpoint(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        state = _FORWARD.get()
        if state is None:
            return checkpoint(function, *args, **kwargs)
        calls = 0

        def run(*a: Any, **k: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:  # the forward itself, inside its own context
                return function(*a, **k)
            token = _FORWARD.set(state.replay())  # the recomputation, during backward
            try:
                return function(*a, **k)
            finally:
                _FORWARD.reset(token)

        return checkpoint(run, *args, **kwargs)

    bound_checkpoint._mept_bound = True  # type: ignore[attr-defined]
    return bound_checkpoint


def enable_checkpointing(model: nn.Module) -> None:
    """Non-reentrant activation checkpointing on a Hugging Face model, under either transformers' name."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5 name
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
