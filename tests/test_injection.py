"""Slots below the first prompted layer: m extra slot tokens, input-independent at the input (see mept.inject.slots)."""

from __future__ import annotations

import pytest
import torch

import mept
from tests.conftest import tiny_bert, tiny_llama


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama], ids=["bert", "llama"])
def test_layers_below_the_first_prompted_one_see_the_backbone_on_text_with_slot_tokens(make):
    backbone = make()
    model = mept.get_model(backbone, mept.make_config("mept", num_experts=3, prompt_length=4, layers="3")).eval()
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    with torch.no_grad():
        prompted = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        slotted_ids = model.injector.insert(ids, model.slot_token_id)
        slotted_mask = model.injector.insert(mask, 1)
        with model.disabled():  # the bare backbone, run on the slotted sequence
            bare = model(input_ids=slotted_ids, attention_mask=slotted_mask, output_hidden_states=True).hidden_states
    layer = model.method.layer_ids[0]  # 0-based: hidden_states[k] is the input of layer k
    assert layer == 2
    for k in range(layer + 1):  # embeddings and every layer below the first prompted one: identical
        assert torch.allclose(prompted[k], model.injector.remove_slots(bare[k]), atol=1e-6)
    assert not torch.allclose(prompted[layer + 1], model.injector.remove_slots(bare[layer + 1]), atol=1e-4)
    # what the slots start from does not depend on the input
    slots = slice(model.spec.slot_offset, model.spec.slot_offset + model.num_slots)
    embedded = bare[0][:, slots]
    assert torch.allclose(embedded[0], embedded[1]) and torch.allclose(embedded[0], embedded[2])
