"""Generation with routed prompts on SmolLM2: KV cache on and off agree, left padding is handled."""

from __future__ import annotations

import pytest
import torch

import mept

QUESTIONS = [
    "question: Who wrote Hamlet? context: Hamlet is a tragedy written by William Shakespeare around 1600.\nAnswer:",
    "question: What is 2 plus 3?\nAnswer:",
    "question: Where is the Eiffel Tower? context: The Eiffel Tower stands in Paris, the capital of France.\nAnswer:",
]


def left_padded(tok, texts):
    tok.padding_side = "left"
    try:
        return tok(texts, padding=True, return_tensors="pt")
    finally:
        tok.padding_side = "right"


@pytest.mark.parametrize("name, settings", [("mept", {"num_experts": 4, "prompt_length": 4, "layers": "1-30"}),
                                            ("ptmoe", {"num_experts": 4, "prompt_length": 8})])
def test_greedy_generation_is_identical_with_and_without_cache(smollm2_lm, name, settings):
    model = mept.get_model(smollm2_lm.model, mept.make_config(name, **settings)).eval()
    try:
        batch = left_padded(smollm2_lm.processor, QUESTIONS)
        kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=smollm2_lm.processor.pad_token_id)
        kw["return_dict_in_generate"] = True  # the routing comes back with the sequences
        cached_out, uncached_out = model.generate(**batch, use_cache=True, **kw), model.generate(**batch, use_cache=False, **kw)
        cached, uncached = cached_out.sequences, uncached_out.sequences
        assert torch.equal(cached, uncached)
        assert cached.shape[0] == 3 and cached.shape[1] > batch["input_ids"].shape[1]
        assert torch.equal(cached[:, : batch["input_ids"].shape[1]], batch["input_ids"])  # no slots in the output
        # routing was decided by the prompt alone: the same experts in both modes
        assert cached_out.routes.keys() == uncached_out.routes.keys()
        assert all(torch.equal(r.chosen, uncached_out.routes[k].chosen) for k, r in cached_out.routes.items())
    finally:
        model.unload()


def test_batched_left_padded_generation_matches_one_by_one(smollm2_lm):
    model = mept.get_model(smollm2_lm.model, mept.MEPTConfig(num_experts=4, prompt_length=4)).eval()
    try:
        tok = smollm2_lm.processor
        kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        batch = left_padded(tok, QUESTIONS)
        together = model.generate(**batch, **kw)[:, batch["input_ids"].shape[1]:]
        for i, q in enumerate(QUESTIONS):
            alone = tok([q], return_tensors="pt")
            single = model.generate(**alone, **kw)[:, alone["input_ids"].shape[1]:]
            assert tok.decode(single[0], skip_special_tokens=True) == tok.decode(together[i], skip_special_tokens=True)
    finally:
        model.unload()
