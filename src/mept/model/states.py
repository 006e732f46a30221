"""The frozen backbone's own hidden states at the prompted layers' inputs, for ``init="hidden_states"``.

Why (ours, not the paper's: it initialises with Xavier normal, Appendix E): a prompt row written into
the hidden state before a layer is a token that layer reads. Xavier rows look like no token the
backbone has seen -- on SmolLM2 (30 layers, pre-norm), behind a sink token, P-Tuning v2 / MEPT prompts
drawn that way put the last token's final state at cosine 0.26 / 0.50 with the bare backbone's before
any training, where rows drawn from the layers' own inputs keep 0.93 / 0.92 (prompt tuning: 0.93-0.94).
Training then starts from the backbone's computation instead of having to repair it
(``benchmarks/studies/decoder_prompts.md``). On post-norm encoders the opposite holds (a small Xavier
row is a weak token there), so ``init="auto"`` uses these rows on text decoders only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mept.errors import MeptError

MAX_EXAMPLES = 64  # training examples run through the backbone (their first tokens are enough rows)
MAX_ROWS = 2048  # rows kept per layer
BATCH = 16


@torch.no_grad()
def layer_input_states(backbone: nn.Module, layers: nn.ModuleList, layer_ids: Sequence[int],
                       token_ids: Sequence[Sequence[int]], pad_id: int, seed: int = 0) -> list[torch.Tensor]:
    """Per prompted layer, hidden states (N, d) at its input over real tokens of ``token_ids``.

    The first token of every example is left out: an encoder's [CLS], a decoder's attention sink
    (a state of another scale; :func:`mept.inject.spec.sink_columns`). The backbone runs bare
    (call this before the prompts' hooks fire, or inside ``injector.disabled()``).
    """
    examples = [list(ids) for ids in token_ids[:MAX_EXAMPLES] if len(ids) > 1]
    if not examples:
        raise MeptError("init='hidden_states' needs text training data of two tokens or more")
    wanted = {layer_id: position for position, layer_id in enumerate(layer_ids)}
    found: list[list[torch.Tensor]] = [[] for _ in layer_ids]
    keep: torch.Tensor | None = None

    def capture(layer_id: int, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = kwargs["hidden_states"] if not args else args[0]  # (B, T, d)
        found[wanted[layer_id]].append(hidden[keep].float().cpu())

    handles = [layers[i].register_forward_pre_hook(lambda m, a, k, i=i: capture(i, m, a, k), with_kwargs=True)
               for i in wanted]
    device = next(backbone.parameters()).device
    run = backbone.get_encoder() if getattr(backbone.config, "is_encoder_decoder", False) else backbone.base_model
    try:
        for start in range(0, len(examples), BATCH):
            chunk = examples[start:start + BATCH]
            width = max(len(ids) for ids in chunk)
            ids = torch.tensor([x + [pad_id] * (width - len(x)) for x in chunk], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk], device=device)
            keep = mask.bool()
            keep[:, 0] = False
            run(input_ids=ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    generator = torch.Generator().manual_seed(seed)
    states = []
    for rows in found:
        rows = torch.cat(rows)
        if rows.shape[0] > MAX_ROWS:
            rows = rows[torch.randperm(rows.shape[0], generator=generator)[:MAX_ROWS]]
        states.append(rows)
    return states


def at_prompt_scale(states: list[torch.Tensor], prompt_length: int) -> list[torch.Tensor]:
    """Each layer's rows scaled as one block to the root-mean-square of a Xavier-normal (m, d) prompt,
    ``sqrt(2 / (m + d))``: the backbone's directions at the scale the prompt lrs were tuned at (ours,
    ``PromptConfig.state_init_scale="xavier"``).

    Why: AdamW moves a prompt entry by about the lr per step whatever its size, so what a prompt learns per
    step is lr / its scale. A decoder's residual stream grows with depth -- SmolLM2's layer inputs have rms
    0.1 at layer 1 and 2-30 at layers 2-30 -- so prompts drawn from it raw moved 0.3-2.0% of their size in an
    epoch on layers 2-30 (35% on layer 1; ``benchmarks/studies/decoder_prompts.md``): they did not train. A
    pre-norm layer reads a prompt row through its RMS norm, which divides the scale out, so one factor per layer
    leaves what the backbone computes at initialisation as it was (up to the norm's epsilon), and keeps the
    layer's rows in their proportions (MEPT's routed and shared rows are drawn from the same scaled rows).
    """
    out = []
    for rows in states:
        target = math.sqrt(2.0 / (prompt_length + rows.shape[-1]))
        rms = rows.float().pow(2).mean().sqrt()
        out.append(rows * (target / rms) if rms > 0 else rows)
    return out
