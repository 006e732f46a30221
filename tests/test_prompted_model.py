"""Claims of the prompted model (``mept.get_model`` and every method in it), checked on MiniLM (real weights) and
tiny random T5 / Llama / ViT / BERT."""

from __future__ import annotations

import math

import pytest
import torch

import mept
from mept.core.routing import trace_of
from mept.errors import MeptError
from mept.methods.vfpt import fourier_transform
from tests.conftest import SMALL, tiny_bert, tiny_llama, tiny_t5, tiny_vit

SENTENCES = [
    "The cat sat quietly on the warm mat.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "Is the capital of France Paris?",
    "He kicked the ball into the net and the crowd roared.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Please remind me to buy milk tomorrow.",
    "The proof follows from the triangle inequality.",
    "She plays the violin in the city orchestra every Sunday.",
]

@pytest.fixture
def wrap():
    """Wrap a backbone and always unload it afterwards, so session backbones stay clean."""
    made = []

    def _wrap(backbone, name, **settings):
        model = mept.get_model(backbone, mept.make_config(name, **{**SMALL[name], **settings}))
        made.append(model)
        return model

    yield _wrap
    for model in made:
        model.unload()


def encode(tok, texts=SENTENCES):
    return tok(texts, padding=True, return_tensors="pt")


def train_steps(model, batch, labels, steps=2):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)
    losses = []
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(SMALL))
def test_only_prompts_routers_and_head_train_and_backbone_stays_bit_identical(minilm, wrap, name):
    model = wrap(minilm.model, name)
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("method.") or n.startswith("backbone.classifier.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if not n.startswith("classifier.")}
    prompts_before = {n: p.detach().clone() for n, p in model.method.named_parameters()}
    train_steps(model, encode(minilm.processor), torch.arange(8) % 3)
    for n, p in model.backbone.named_parameters():
        if n in before:
            assert torch.equal(p, before[n]), f"backbone weight {n} changed"
    assert any(not torch.equal(p, prompts_before[n]) for n, p in model.method.named_parameters())


def test_routing_differs_per_input_and_ignores_batch_mates(minilm, wrap):
    model = wrap(minilm.model, "mept", num_experts=10).eval()
    batch = encode(minilm.processor)
    with torch.no_grad():
        out = model(**batch)
    logits, trace = out.logits, trace_of(out.routes)
    assert set(trace) == set(range(6))
    assert any(len(set(chosen.tolist())) > 1 for _, chosen in trace.values()), "all inputs took the same experts"
    for i in (0, 1, 5):  # alone (no padding) vs inside the padded batch
        alone = minilm.processor([SENTENCES[i]], return_tensors="pt")
        with torch.no_grad():
            single = model(**alone)
        torch.testing.assert_close(single.logits[0], logits[i], atol=1e-5, rtol=1e-4)
        assert [c[i].item() for _, c in trace.values()] == [c[0].item() for _, c in trace_of(single.routes).values()]


def test_mept_on_smollm2_routes_per_input_and_trains_its_routers(smollm2_cls, wrap):
    model = wrap(smollm2_cls.model, "mept", layers="1-30").train()
    batch = encode(smollm2_cls.processor, SENTENCES[:4])
    out = model(**batch, labels=torch.tensor([0, 1, 0, 1]))
    out.loss.backward()
    assert out.logits.shape == (4, 2)
    trace = trace_of(out.routes)
    assert len(trace) == 30 and any(len(set(c.tolist())) > 1 for _, c in trace.values())
    assert all(r.linear.weight.grad.abs().sum() > 0 for r in model.method.routers())
    assert model.backbone.score.weight.grad is not None


def test_llama_classification_reads_last_real_token_of_right_padded_rows(wrap):
    # eval: a training-mode forward moves the routers' running mean (the centred input), so two
    # training forwards centre differently; a trained model's routing depends on no batch mate
    model = wrap(tiny_llama("cls"), "mept").eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask).logits
        alone = model(input_ids=ids[1:, :3]).logits
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("routing", ["top1", "gumbel", "perturb", "dense", "topk"])
def test_router_of_every_prompted_layer_receives_gradient(minilm, wrap, routing):
    model = wrap(minilm.model, "mept", routing=routing).train()
    model(**encode(minilm.processor), labels=torch.arange(8) % 3).loss.backward()
    for j, router in enumerate(model.method.routers()):
        assert router.linear.weight.grad is not None and router.linear.weight.grad.abs().sum() > 0, f"layer {j}"


def test_frozen_router_gets_no_gradient_and_frozen_prompts_stay(minilm, wrap):
    model = wrap(minilm.model, "mept", train_router=False).train()
    model(**encode(minilm.processor), labels=torch.arange(8) % 3).loss.backward()
    assert all(r.linear.weight.grad is None and not r.linear.weight.requires_grad for r in model.method.routers())
    assert model.method.experts.grad.abs().sum() > 0
    model.unload()
    frozen = wrap(minilm.model, "mept", train_prompts=False)
    assert not frozen.method.experts.requires_grad and not frozen.method.shared.requires_grad
    assert all(r.linear.weight.requires_grad for r in frozen.method.routers())


def test_stochastic_routing_uses_random_experts_in_training_and_their_mean_at_eval(minilm, wrap):
    model = wrap(minilm.model, "mept", routing="stochastic", shared="off", layers="1")
    batch = encode(minilm.processor)
    model.eval()
    with torch.no_grad():
        route = model(**batch).routes[0]
    assert route.index.shape == (8, 4) and torch.allclose(route.weight, torch.full((8, 4), 0.25))
    model.train()
    seen = set()
    for _ in range(5):
        seen |= set(model(**batch).routes[0].index[:, 0].tolist())
    assert len(seen) > 1


def test_shared_expert_switches_change_the_expert_pool(minilm, wrap):
    on = wrap(minilm.model, "mept", num_experts=4, num_shared=2)
    assert on.method.experts.shape[1] == 4 and on.method.shared.shape[1] == 2
    on.unload()
    off = wrap(minilm.model, "mept", num_experts=4, shared="off")
    assert off.method.shared is None
    off.unload()
    replace = wrap(minilm.model, "mept", num_experts=4, num_shared=2, shared="replace")
    assert replace.method.experts.shape[1] == 6 and replace.method.shared is None



@pytest.mark.parametrize("spec, expected", [("all", list(range(12))), ("1", [0]), ("1-6", list(range(6))),
                                            ("7-12", list(range(6, 12))), ("1,3,5", [0, 2, 4]), ([2, 4], [1, 3])])
def test_layer_specs_parse_one_based(spec, expected):
    from mept.core.config import parse_layers

    assert parse_layers(spec, 12) == expected


def test_layer_spec_beyond_backbone_is_a_clear_error(minilm):
    with pytest.raises(MeptError, match="layer 7 but the backbone has 6"):
        mept.get_model(minilm.model, mept.MEPTConfig(layers="1-7"))


@pytest.mark.parametrize("init, std", [("xavier_normal", lambda m, d: math.sqrt(2 / (m + d))),
                                       ("he_normal", lambda m, d: math.sqrt(2 / d))])
def test_init_schemes_really_initialise(init, std):
    model = mept.get_model(tiny_bert(), mept.MEPTConfig(num_experts=20, prompt_length=20, init=init))
    experts = model.method.experts.detach()
    assert abs(experts.std().item() - std(20, 32)) / std(20, 32) < 0.1
    assert abs(experts.mean().item()) < 0.02


def test_mept_parameter_report_matches_the_formula(minilm, wrap):
    model = wrap(minilm.model, "mept", num_experts=10, prompt_length=10, num_shared=1)
    report = model.parameter_report()
    layers, d, n_r, n_s, m = 6, 384, 10, 1, 10
    assert report["prompt"] + report["router"] == layers * (n_r + n_s) * m * d + layers * d * n_r
    assert report["head"] == 384 * 3 + 3
    assert report["trainable"] == report["prompt"] + report["router"] + report["head"]
    assert report["activated_prompt_tokens_per_layer"] == 10 and report["prompted_layers"] == 6
    assert report["backbone"] == sum(p.numel() for n, p in minilm.model.named_parameters() if "classifier" not in n)
    assert report["trainable_percent"] == pytest.approx(100 * report["trainable"] / report["backbone"])


def test_token_level_outputs_never_include_prompt_slots(wrap):
    lm = wrap(tiny_llama("lm"), "mept")
    ids = torch.randint(3, 128, (2, 7))
    out = lm(input_ids=ids, labels=ids, output_hidden_states=True)
    assert out.logits.shape == (2, 7, 128)
    assert all(h.shape == (2, 7, 32) for h in out.hidden_states)
    t5 = wrap(tiny_t5(), "mept")
    out = t5(input_ids=ids, labels=ids[:, :3].contiguous(), output_hidden_states=True)
    assert out.encoder_last_hidden_state.shape == (2, 7, 32) and out.logits.shape == (2, 3, 128)
    assert all(h.shape == (2, 7, 32) for h in out.encoder_hidden_states)


def test_causal_lm_loss_ignores_slots():
    backbone = tiny_llama("lm")
    ids = torch.randint(3, 128, (2, 7))
    model = mept.get_model(backbone, mept.PromptTuningConfig(prompt_length=4))
    out = model(input_ids=ids, labels=ids)
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)


def backbones_for(name):
    return [("bert", tiny_bert), ("llama", lambda: tiny_llama("cls")), ("t5", tiny_t5), ("vit", tiny_vit)]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_method_trains_on_every_backbone(name):
    for kind, make in backbones_for(name):
        torch.manual_seed(0)
        model = mept.get_model(make(), mept.make_config(name, **SMALL[name])).train()
        if kind == "vit":
            batch, labels = {"pixel_values": torch.randn(4, 3, 32, 32)}, torch.tensor([0, 1, 2, 3])
        elif kind == "t5":
            batch, labels = {"input_ids": torch.randint(2, 128, (4, 9))}, torch.randint(2, 128, (4, 2))
        else:
            batch, labels = {"input_ids": torch.randint(2, 128, (4, 9))}, torch.tensor([0, 1, 0, 1])
        losses = train_steps(model, batch, labels, steps=6)
        assert all(math.isfinite(x) for x in losses), (name, kind)
        assert losses[-1] < losses[0], (name, kind, losses)


def test_vit_outputs_keep_their_shape_and_slots_follow_cls(wrap):
    model = wrap(tiny_vit(), "vfpt")
    out = model(pixel_values=torch.randn(2, 3, 32, 32), output_hidden_states=True)
    assert out.logits.shape == (2, 10)
    assert all(h.shape == (2, 1 + 16, 32) for h in out.hidden_states)
    assert model.injector.offset == 1


@pytest.mark.parametrize("dims", ["both", "hidden", "sequence"])
@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_vfpt_transform_matches_torch_fft(dims, fraction):
    prompt = torch.randn(10, 16)
    n = int(10 * fraction)
    expected = prompt.clone()
    if n == 0:
        assert torch.equal(fourier_transform(prompt, fraction, dims), prompt)
        return
    head = prompt[:n].to(torch.complex64)
    if dims != "sequence":
        head = torch.fft.fft(head, dim=-1)
    if dims != "hidden":
        head = torch.fft.fft(head, dim=-2)
    expected[:n] = head.real
    torch.testing.assert_close(fourier_transform(prompt, fraction, dims), expected)
    if dims == "both":
        torch.testing.assert_close(expected[:n], torch.fft.fft2(prompt[:n]).real) if n else None


def test_vfpt_inserts_the_transformed_prompt():
    model = mept.get_model(tiny_bert(), mept.VFPTConfig(prompt_length=4, fourier_fraction=0.5, layers="1"))
    seen = {}
    layer = model.backbone.bert.encoder.layer[0]
    layer.register_forward_pre_hook(lambda mod, args, kwargs: seen.update(h=(args[0] if args else kwargs["hidden_states"])), with_kwargs=True)
    model(input_ids=torch.randint(2, 128, (1, 5)))
    slots = seen["h"][0, 1:5]
    torch.testing.assert_close(slots, fourier_transform(model.method.prompts[0], 0.5))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_save_and_load_restore_identical_logits(minilm, tmp_path, name):
    model = mept.get_model(minilm.model, mept.make_config(name, **SMALL[name]))
    model.train()
    train_steps(model, encode(minilm.processor), torch.arange(8) % 3, steps=1)
    model.eval()
    batch = encode(minilm.processor)
    with torch.no_grad():
        before = model(**batch).logits
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    size = (tmp_path / "adapter_model.safetensors").stat().st_size
    stats = sum(b.numel() for b in model.method.buffers())  # the routers' running statistics (centred input)
    assert size < 4 * (model.parameter_report()["trainable"] + stats) + 10_000  # trained weights only
    model.unload()
    with torch.no_grad():  # scramble the head so the load must restore it
        minilm.model.classifier.weight.normal_()
    restored = mept.load(minilm.model, tmp_path).eval()
    with torch.no_grad():
        after = restored(**batch).logits
    restored.unload()
    assert torch.equal(before, after)


def test_loading_onto_a_different_backbone_fails_clearly(tmp_path):
    small = mept.get_model(tiny_bert(), mept.MEPTConfig(num_experts=2))
    small.save_pretrained(tmp_path)
    import transformers

    wider = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=128, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64))
    with pytest.raises(MeptError, match="hidden_size=32"):
        mept.load(wider, tmp_path)
    deeper = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64))
    with pytest.raises(MeptError, match="num_layers=3"):
        mept.load(deeper, tmp_path)
    with pytest.raises(MeptError, match="not a mept checkpoint"):
        mept.load(deeper, tmp_path / "missing")


def test_balance_loss_is_added_when_enabled(minilm, wrap):
    model = wrap(minilm.model, "mept", balance_loss=0.5).train()
    batch, labels = encode(minilm.processor), torch.arange(8) % 3
    torch.manual_seed(1)  # same dropout masks in both passes
    out = model(**batch, labels=labels)
    with_aux, aux = out.loss, out.router_aux_loss
    assert aux is not None and aux.item() >= 0.5 * (1.0 - 1e-6)  # weight 0.5 x the Switch loss, whose minimum is 1
    model.method.config.balance_loss = 0.0
    torch.manual_seed(1)
    without = model(**batch, labels=labels).loss
    torch.testing.assert_close(with_aux - without, aux, atol=1e-5, rtol=1e-4)


def test_config_validation_names_the_field():
    with pytest.raises(MeptError, match="MEPTConfig.routing"):
        mept.MEPTConfig(routing="top3")
    with pytest.raises(MeptError, match="MEPTConfig.num_experts"):
        mept.MEPTConfig(num_experts=0)
    with pytest.raises(MeptError, match="unknown mept setting"):
        mept.make_config("mept", experts=3)
    with pytest.raises(MeptError, match="unknown method"):
        mept.make_config("adapters")


def test_wrapping_twice_is_refused(minilm, wrap):
    wrap(minilm.model, "prompt_tuning")
    with pytest.raises(MeptError, match="already wrapped"):
        mept.get_model(minilm.model, mept.PromptTuningConfig())


def test_too_long_input_is_a_clear_error(minilm, wrap):
    model = wrap(minilm.model, "prompt_tuning")
    with pytest.raises(MeptError, match="exceeds the model's 512 positions"):
        model(input_ids=torch.ones(1, 510, dtype=torch.long))


def test_ptmoe_svd_init_reproduces_the_text_subspace():
    model = mept.get_model(tiny_bert(), mept.PTMoEConfig(num_experts=3, prompt_length=6, rank=4))
    text = torch.randn(40, 32)
    model.method.init_from_embeddings(text, noise=0.0)
    experts = model.method.experts()  # (E, m, d)
    U, S, Vh = torch.linalg.svd(text, full_matrices=False)
    rank4 = (U[:6, :4] * S[:4]) @ Vh[:4]  # best rank-4 reconstruction of the first 6 rows
    for e in range(3):
        torch.testing.assert_close(experts[e], rank4, atol=1e-4, rtol=1e-4)


def test_encoder_head_reads_the_mean_of_real_tokens_without_slots(minilm, wrap):
    model = wrap(minilm.model, "mept").eval()
    batch = encode(minilm.processor, SENTENCES[:3])
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        last = out.hidden_states[-1]  # slots already removed
        mask = batch["attention_mask"][..., None].float()
        pooled = (last * mask).sum(1) / mask.sum(1)
        expected = minilm.model.classifier(pooled)
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-4)
    model.unload()
    native = mept.get_model(minilm.model, mept.MEPTConfig(), head_pooling="native")
    try:
        assert native.head_pooling == "native"
        with torch.no_grad():
            assert not torch.allclose(native(**batch).logits, expected)
    finally:
        native.unload()


def test_forward_after_unload_is_refused():
    import torch
    import transformers

    cfg = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, num_labels=2)
    model = mept.get_model(transformers.BertForSequenceClassification(cfg).eval(), mept.make_config("mept", num_experts=2, prompt_length=2))
    model.unload()
    with pytest.raises(mept.MeptError, match="unload"):
        model(input_ids=torch.tensor([[1, 2, 3]]))
