"""Deep prompts in a decoder: a plain token keeps the attention sink in front of the prompt slots, and
prompts can start as the backbone's own hidden states (benchmarks/studies/decoder_prompts.md)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import mept
from mept.core.adapter_format import CONFIG_NAME
from mept.errors import MeptError
from mept.harness.prepare_run import init_from_hidden_states
from mept.model.states import layer_input_states
from tests.conftest import tiny_bert, tiny_llama
from tests.test_prompted_model import SENTENCES, encode


def wrapped(backbone, method="ptuning_v2", **settings):
    return mept.get_model(backbone, mept.make_config(method, prompt_length=3, **settings))


def layer_inputs(model, layer: int):
    """Capture the hidden states entering ``layer`` of a wrapped model's backbone (a list, filled per forward)."""
    seen = []
    layers = model.backbone.get_submodule(model.spec.layers_path)
    handle = layers[layer].register_forward_pre_hook(
        lambda m, a, k: seen.append((k["hidden_states"] if not a else a[0]).detach()), with_kwargs=True)
    return seen, handle


def features(tok, texts=SENTENCES):
    return [SimpleNamespace(input_ids=ids) for ids in tok(texts)["input_ids"]]


def last_states(model, batch):
    """Each row's final hidden state at its last real token (right padding)."""
    out = model(**batch, output_hidden_states=True)
    last = batch["attention_mask"].sum(1) - 1
    return out.hidden_states[-1][torch.arange(len(last)), last]


def test_the_sink_column_precedes_the_slots_and_no_prompt_overwrites_it():
    model = wrapped(tiny_llama("cls")).eval()
    ids = torch.randint(5, 100, (2, 6))
    seen, handle = layer_inputs(model, 1)
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    handle.remove()
    h = seen[0]
    assert h.shape[1] == 6 + 1 + 3  # text, the sink, 3 slots
    torch.testing.assert_close(h[:, 1:4], model.method.prompts[1].expand(2, -1, -1))
    # the sink is the slot token's own state: a causal column 0 sees nothing else, so the bare backbone run on
    # a sequence that starts with that token has the same state there
    bare_seen, handle = layer_inputs(model, 1)
    with torch.no_grad(), model.disabled():
        model(input_ids=torch.cat([torch.full((2, 1), model.slot_token_id), ids], dim=1))
    handle.remove()
    torch.testing.assert_close(h[:, 0], bare_seen[0][:, 0])
    assert out.hidden_states[-1].shape[1] == 6  # callers see the backbone's shapes
    assert model.reserved_positions == 4 and model.num_slots == 3


def test_only_text_decoders_get_a_sink_and_the_authors_layout_stays_a_setting():
    assert wrapped(tiny_bert()).reserved_positions == 3  # an encoder's [CLS] is not overwritten anyway
    old = wrapped(tiny_llama("cls"), attention_sink=False).eval()
    assert old.reserved_positions == 3
    seen, handle = layer_inputs(old, 1)
    with torch.no_grad():
        old(input_ids=torch.randint(5, 100, (2, 6)))
    handle.remove()
    torch.testing.assert_close(seen[0][:, :3], old.method.prompts[1].expand(2, -1, -1))  # slots at position 0


def test_the_sink_counts_against_the_positions():
    model = wrapped(tiny_llama("cls"))  # 256 positions
    model(input_ids=torch.randint(5, 100, (1, 252)))
    with pytest.raises(MeptError, match=r"input length 253 \+ 4 prompt slots exceeds the model's 256 positions"):
        model(input_ids=torch.randint(5, 100, (1, 253)))


def test_an_adapter_saved_before_the_sink_loads_with_the_layout_it_trained_with(tmp_path):
    backbone = tiny_llama("cls")
    model = wrapped(backbone, "mept", attention_sink=False, num_experts=3).eval()
    ids = torch.randint(5, 100, (3, 7))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    model.save_pretrained(tmp_path / "old")
    model.unload()
    meta = json.loads((tmp_path / "old" / CONFIG_NAME).read_text())
    del meta["config"]["attention_sink"]  # as format 1 wrote it: no such setting, slots at position 0
    meta["format_version"] = 1
    (tmp_path / "old" / CONFIG_NAME).write_text(json.dumps(meta))
    loaded = mept.load(backbone, tmp_path / "old").eval()
    assert loaded.prompt_config.attention_sink is False and loaded.reserved_positions == 3
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, before)


def test_hidden_state_init_draws_every_prompt_row_from_that_layers_inputs(minilm):
    tok = minilm.processor
    for method in ("ptuning_v2", "mept"):
        model = wrapped(minilm.model, method, init="hidden_states")
        try:
            init_from_hidden_states(model, features(tok), seed=3)
            layers = model.backbone.get_submodule(model.spec.layers_path)
            states = layer_input_states(model.backbone, layers, model.method.layer_ids,
                                        [f.input_ids for f in features(tok)], model.slot_token_id)
            blocks = [model.method.prompts] if method == "ptuning_v2" else [model.method.experts, model.method.shared]
            for j, rows in enumerate(states):
                for block in blocks:
                    prompt_rows = block[j].detach().reshape(-1, rows.shape[1])
                    distance = torch.cdist(prompt_rows, rows, compute_mode="donot_use_mm_for_euclid_dist")
                    assert distance.min(dim=1).values.max() < 1e-4  # each row is one of the states
        finally:
            model.unload()


def test_hidden_state_init_is_seeded_and_refused_where_prompts_are_not_rows(minilm):
    tok = minilm.processor
    drawn = []
    for _ in range(2):
        model = wrapped(minilm.model, "ptuning_v2", init="hidden_states")
        try:
            init_from_hidden_states(model, features(tok), seed=5)
            drawn.append(model.method.prompts.detach().clone())
        finally:
            model.unload()
    torch.testing.assert_close(drawn[0], drawn[1])
    with pytest.raises(MeptError, match="PTMoEConfig.init='hidden_states' is not supported"):
        mept.make_config("ptmoe", init="hidden_states")


def test_deep_prompts_keep_smollm2_computing_what_it_computes_bare(smollm2_cls):
    """SmolLM2 parks attention on its first position (hidden norm ~22,400 there, 130-720 elsewhere). Deep
    prompts over that position, or drawn as Xavier noise, change what the frozen model computes before any
    training; a sink in front and prompts drawn from its own states keep it (0.89 here, 100 slots per layer; prompt tuning 0.94 in benchmarks/decoder_prompts.py)."""
    tok, backbone = smollm2_cls.processor, smollm2_cls.model.eval()
    batch = encode(tok)
    with torch.no_grad():
        bare = last_states(backbone, batch)
    cosine = {}
    for sink, init in [(False, "xavier_normal"), (True, "hidden_states")]:
        model = mept.get_model(backbone, mept.make_config("ptuning_v2", attention_sink=sink, init=init)).eval()
        try:
            if init == "hidden_states":
                init_from_hidden_states(model, features(tok, SENTENCES[::-1]), seed=0)
            with torch.no_grad():
                cosine[sink] = F.cosine_similarity(last_states(model, batch), bare).mean().item()
        finally:
            model.unload()
    assert cosine[True] > 0.85 and cosine[False] < 0.5, cosine  # measured 0.89 and 0.26


def test_state_rows_at_the_prompt_scale_leave_the_prenorm_decoders_computation_and_trainable_scale(smollm2_cls):
    """SmolLM2's layer inputs have rms 2-30 past layer 1, so raw state rows barely move under AdamW at the prompt
    lr; scaled per layer to a Xavier prompt's rms they compute what the raw rows compute (each layer reads a
    prompt row through its RMS norm) at the scale the lrs were tuned at (mept.model.states.at_prompt_scale)."""
    tok, backbone = smollm2_cls.processor, smollm2_cls.model.eval()
    batch = encode(tok)
    last, blocks = {}, {}
    for scale in ("states", "xavier"):
        torch.manual_seed(0)  # the same routers
        model = mept.get_model(backbone, mept.make_config("mept", num_experts=4, state_init_scale=scale)).eval()
        try:
            init_from_hidden_states(model, features(tok, SENTENCES[::-1]), seed=0)
            with torch.no_grad():
                last[scale] = last_states(model, batch)
            blocks[scale] = torch.cat([model.method.experts.detach().flatten(1), model.method.shared.detach().flatten(1)], 1)
        finally:
            model.unload()
    assert F.cosine_similarity(last["xavier"], last["states"]).min() > 0.999
    target = (2 / (10 + backbone.config.hidden_size)) ** 0.5
    raw_rms, scaled_rms = (blocks[k].pow(2).mean(1).sqrt() for k in ("states", "xavier"))
    assert raw_rms[1:].min() > 20 * target  # the decoder's own scale past layer 1
    assert ((scaled_rms / target) - 1).abs().max() < 0.5  # every layer near the Xavier scale
    # the same rows, one factor per layer: directions kept
    factor = (raw_rms / scaled_rms)[:, None]
    torch.testing.assert_close(blocks["xavier"] * factor, blocks["states"], rtol=1e-4, atol=1e-4 * float(raw_rms.max()))


def test_a_run_reports_what_init_auto_meant_on_its_backbone(tmp_path, capsys):
    from mept.cli import main
    from tests.conftest import reviews, tiny_model_dir

    data = reviews(tmp_path / "reviews.csv", 24)
    for family, ran in (("llama", "hidden_states"), ("bert", "xavier_normal")):
        out = tmp_path / f"run-{family}"
        assert main(["train", "--model", str(tiny_model_dir(tmp_path / family, family)), "--train-file", str(data),
                     "--max-steps", "1", "--batch-size", "8", "--max-length", "16", "--experts", "2",
                     "--prompt-length", "2", "--no-progress", "--output", str(out)]) == 0
        assert json.loads((out / "metrics.json").read_text())["prompt_init"] == {"asked": "auto", "ran": ran}
        assert f"prompt init: {ran} (auto: " in capsys.readouterr().out


@pytest.mark.parametrize("name", ["attention_sink", "train_router", "train_prompts"])
def test_an_on_off_setting_that_is_not_a_bool_is_one_error(name):
    # the rule, not the instance: every bool field of every method's config (a string was truthy, or a TypeError)
    with pytest.raises(MeptError, match=rf"MEPTConfig\.{name} must be true or false, got 'maybe'"):
        mept.make_config("mept", **{name: "maybe"})
    assert getattr(mept.make_config("mept", **{name: False}), name) is False


def test_the_config_level_decoder_answer_is_the_one_the_injector_gives():
    """``--lr-grid auto`` places its grid from the config alone (``is_text_decoder``) before any weight loads; the
    run then reads ``BackboneSpec.text_decoder``. One decision behind both: they cannot disagree."""
    import transformers

    from mept.inject.spec import inspect_backbone, is_text_decoder, task_type_of
    from tests.conftest import tiny_mpnet, tiny_t5, tiny_vit

    gpt2 = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    gpt2.model_type = "unlisted"  # a decoder the config does not name: only its model class says so
    unnamed = transformers.GPT2LMHeadModel(gpt2)
    answers = {}
    for name, model in [("bert", tiny_bert()), ("mpnet", tiny_mpnet()), ("t5", tiny_t5()), ("vit", tiny_vit()),
                        ("llama-cls", tiny_llama("cls")), ("llama-lm", tiny_llama("causal_lm")),
                        ("unnamed-lm", unnamed)]:
        spec = inspect_backbone(model)
        assert is_text_decoder(model.config, task_type_of(model)) == spec.text_decoder, name
        answers[name] = spec.text_decoder
    assert answers == {"bert": False, "mpnet": False, "t5": False, "vit": False, "llama-cls": True,
                       "llama-lm": True, "unnamed-lm": True}
    assert not is_text_decoder(unnamed.config)  # without the model class the config alone cannot tell


def test_an_xlm_style_lm_head_is_a_decoder_only_when_its_config_says_causal():
    """XLM's ``XLMWithLMHeadModel`` ends like GPT-2's ``GPT2LMHeadModel`` but is a masked LM unless ``causal``:
    read from the model class and from the config's ``architectures``, both places answer the same."""
    import transformers

    from mept.core.task_types import TaskType
    from mept.inject.spec import inspect_backbone, is_text_decoder, task_type_of

    answers = {}
    for causal in (False, True):
        cfg = transformers.XLMConfig(vocab_size=64, emb_dim=32, n_layers=2, n_heads=4, max_position_embeddings=64,
                                     causal=causal, architectures=["XLMWithLMHeadModel"])
        model = transformers.XLMWithLMHeadModel(cfg)
        spec = inspect_backbone(model)
        assert is_text_decoder(cfg) == is_text_decoder(cfg, task_type_of(model)) == spec.text_decoder
        answers[causal] = (task_type_of(model), spec.text_decoder, spec.slot_offset)
    assert answers == {False: (TaskType.BASE, False, 1), True: (TaskType.CAUSAL_LM, True, 0)}
