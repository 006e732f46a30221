"""Mixed-adapter batches: each row's result is what its adapter computes alone, for every prompt method.

Adapters are saved from ``PromptedModel`` s with their own random prompts, routers and heads
(different class counts), then loaded side by side into one ``MultiAdapterModel``; a batch that
interleaves their rows must give every row the logits, experts and generations its adapter gives
it alone. Encoder: MiniLM (offline); decoder: a tiny random Llama per method, and SmolLM2 once.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_bert, tiny_llama, tiny_mpnet
from torch import nn

import mept
from mept.errors import MeptError
from mept.multi_adapter import MultiAdapterModel

TEXTS = ["a gentle film about grief", "the plot collapses in the last hour", "ok", "I loved every minute of it",
         "terrible acting, wonderful music, a strange evening overall", "why"]
# small settings so every method runs quickly; P-Tuning v2's 100 slots would only slow the test
SETTINGS = {"prompt_tuning": {"prompt_length": 4}, "ptuning_v2": {"prompt_length": 4},
            "smop": {"prompt_length": 3, "num_prompts": 3}, "mept": {"prompt_length": 3, "num_experts": 3},
            "vfpt": {"prompt_length": 4}, "ptmoe": {"prompt_length": 4, "num_experts": 3, "rank": 4}}
METHODS = list(SETTINGS)


def with_head(backbone: nn.Module, num_labels: int, head: str) -> nn.Module:
    """A copy of ``backbone`` whose task head has ``num_labels`` classes (fresh random weights)."""
    copy_ = copy.deepcopy(backbone)
    old = copy_.get_submodule(head)
    copy_.set_submodule(head, nn.Linear(old.in_features, num_labels, bias=old.bias is not None))
    copy_.config.num_labels = num_labels
    return copy_.eval()


def save_adapters(make_backbone, method: str, tmp_path, inputs, seeds=(1, 2), generate: dict | None = None):
    """Save two adapters of ``method`` (seeds, class counts differ); return their folders and alone results."""
    folders, alone = {}, {}
    for k, seed in enumerate(seeds):
        torch.manual_seed(seed)
        model = mept.get_model(make_backbone(k), mept.make_config(method, **SETTINGS[method])).eval()
        with torch.no_grad():
            for p in model.method.parameters():  # trained-looking values: not the init's small symmetric ones
                p.add_(torch.randn_like(p) * 0.5)
            out = model(**inputs[k])
            gen = model.generate(**inputs[k], **generate) if generate else None
        name = f"{method}-{k}"
        folders[name] = tmp_path / name
        model.save_pretrained(folders[name])
        alone[name] = (out, gen)
        model.unload()
    return folders, alone


def tokenize(tok, rows, side="right"):
    tok.padding_side = side
    try:
        return dict(tok(rows, padding=True, return_tensors="pt"))
    finally:
        tok.padding_side = "right"


def interleave(tok, names, texts, side="right"):
    """Rows alternate between the adapters; returns the mixed batch, its names and each adapter's rows."""
    order = [(names[i % len(names)], t) for i, t in enumerate(texts)]
    rows = {n: [i for i, (m, _) in enumerate(order) if m == n] for n in names}
    return tokenize(tok, [t for _, t in order], side), [n for n, _ in order], rows


def experts_of(routes):
    """Top-1 experts (B, L) from a PromptedModel's routes."""
    return torch.stack([routes[k].chosen for k in sorted(routes)], 1)


def mixed_forward(backbone, folders, mixed, row_names):
    """The saved adapters loaded side by side onto a copy of ``backbone``; the mixed batch's output."""
    multi = MultiAdapterModel(copy.deepcopy(backbone))
    for name, folder in folders.items():
        multi.load_adapter(folder, name)
    return multi, multi(**mixed, adapter_names=row_names)


def assert_rows_as_alone(out, alone, rows):
    """Each adapter's rows of the mixed output: the logits and experts its adapter gave them alone."""
    for name, (own, _) in alone.items():
        index = torch.tensor(rows[name])
        torch.testing.assert_close(out.logits[index, : own.logits.shape[1]], own.logits, atol=1e-5, rtol=1e-5)
        if own.routes is not None:
            assert torch.equal(out.routes[name].rows, index)
            assert torch.equal(out.routes[name].experts(), experts_of(own.routes))
        else:
            assert out.routes is None or name not in out.routes


@pytest.mark.parametrize("method", METHODS)
def test_mixed_batch_on_minilm_equals_each_adapter_alone(minilm, method, tmp_path):
    tok = minilm.processor
    heads = {0: 2, 1: 3}  # each adapter has its own head, of its own width
    names = [f"{method}-0", f"{method}-1"]
    mixed, row_names, rows = interleave(tok, names, TEXTS)
    alone_inputs = {k: tokenize(tok, [TEXTS[i] for i in rows[names[k]]]) for k in (0, 1)}
    folders, alone = save_adapters(lambda k: with_head(minilm.model, heads[k], "classifier"), method, tmp_path,
                                   alone_inputs)
    _, out = mixed_forward(minilm.model, folders, mixed, row_names)
    assert out.logits.shape == (len(TEXTS), 3)
    assert_rows_as_alone(out, alone, rows)
    assert torch.isinf(out.logits[torch.tensor(rows[names[0]]), 2:]).all()  # past a row's own classes: -inf


def test_every_method_in_one_batch_on_minilm(minilm, tmp_path):
    """Six methods, six slot layouts and widths, one call: each row still gets its adapter's own answer."""
    tok = minilm.processor
    folders, alone, rows = {}, {}, {}
    names = [f"{m}-0" for m in METHODS]
    mixed, row_names, rows = interleave(tok, names, TEXTS * 2)
    for j, method in enumerate(METHODS):
        own_rows = [(TEXTS * 2)[i] for i in rows[names[j]]]
        f, a = save_adapters(lambda k, j=j: with_head(minilm.model, 2 + j % 3, "classifier"), method, tmp_path,
                             {0: tokenize(tok, own_rows)}, seeds=(10 + j,))
        folders.update(f)
        alone.update(a)
    multi, out = mixed_forward(minilm.model, folders, mixed, row_names)
    # four slot layouts, four forwards: prompt tuning and PT-MoE share one (m 4, layer 1), so do P-Tuning v2
    # and VFPT (m 4, every layer); SMoP (m 3, layer 1) and MEPT (m 3, every layer) have their own
    assert len(multi.injectors) == 4
    assert_rows_as_alone(out, alone, rows)


class TinyTokenizer:
    """Whitespace words -> ids of a tiny random Llama's 128-token vocabulary (pad 0)."""

    pad_token_id = 0
    padding_side = "right"

    def __call__(self, rows, padding=True, return_tensors="pt"):
        ids = [[3 + (sum(map(ord, w)) % 120) for w in r.split()] or [3] for r in rows]
        width = max(map(len, ids))
        pad = lambda x, v: ([v] * (width - len(x)) + x) if self.padding_side == "left" else (x + [v] * (width - len(x)))  # noqa: E731
        return {"input_ids": torch.tensor([pad(x, 0) for x in ids]),
                "attention_mask": torch.tensor([pad([1] * len(x), 0) for x in ids])}


@pytest.mark.parametrize("method", METHODS)
def test_mixed_batch_on_a_decoder_equals_each_adapter_alone(method, tmp_path):
    """A tiny random Llama: sequence classification (own heads) and greedy generation (left-padded)."""
    torch.manual_seed(0)
    base_cls, base_lm = tiny_llama("cls"), tiny_llama("causal_lm")
    tok = TinyTokenizer()
    names = [f"{method}-0", f"{method}-1"]
    mixed, row_names, rows = interleave(tok, names, TEXTS)
    alone_inputs = {k: tokenize(tok, [TEXTS[i] for i in rows[names[k]]]) for k in (0, 1)}
    folders, alone = save_adapters(lambda k: with_head(base_cls, 2 + k, "score"), method, tmp_path / "cls", alone_inputs)
    _, out = mixed_forward(base_cls, folders, mixed, row_names)
    assert_rows_as_alone(out, alone, rows)

    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0, return_dict_in_generate=True)
    mixed, row_names, rows = interleave(tok, names, TEXTS, side="left")
    alone_inputs = {k: tokenize(tok, [TEXTS[i] for i in rows[names[k]]], "left") for k in (0, 1)}
    folders, alone = save_adapters(lambda k: copy.deepcopy(base_lm), method, tmp_path / "lm", alone_inputs, generate=kw)
    multi, _ = mixed_forward(base_lm, folders, mixed, row_names)
    gen = multi.generate(**mixed, adapter_names=row_names, **kw)
    width = mixed["input_ids"].shape[1]
    for k, name in enumerate(names):
        _, own = alone[name]
        own_width = alone_inputs[k]["input_ids"].shape[1]
        index = torch.tensor(rows[name])
        assert torch.equal(gen.sequences[index, width:], own.sequences[:, own_width:])  # the same new tokens
        if own.routes is not None:
            assert torch.equal(gen.routes[name].experts(), experts_of(own.routes))


def test_smollm2_rank_predictions_of_mixed_rows_equal_each_adapter_alone(smollm2_lm, tmp_path):
    """Real SmolLM2: MEPT and prompt tuning adapters with their own label words, scored by rank classification."""
    from mept.data.encode import Encoder
    from mept.data.examples import Example
    from mept.data.registry import TaskSpec
    from mept.harness.evaluate import predict_details
    from mept.multi_adapter.predict import predict_features

    tok = smollm2_lm.processor
    words = {"mept-a": ("negative", "positive"), "pt-b": ("sports", "politics", "science")}
    methods = {"mept-a": ("mept", {"prompt_length": 4, "num_experts": 3, "layers": "1-30"}),
               "pt-b": ("prompt_tuning", {"prompt_length": 6})}
    texts = TEXTS[:4]
    alone, folders = {}, {}
    for seed, (name, (method, settings)) in enumerate(methods.items()):
        torch.manual_seed(seed)
        model = mept.get_model(smollm2_lm.model, mept.make_config(method, **settings)).eval()
        try:
            with torch.no_grad():
                for p in model.method.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
            spec = TaskSpec(name, words[name], "accuracy", "classification")
            encoder = Encoder("causal_lm", tok, 0, 64, None)
            features, _ = encoder.featurize([Example(t, -1, "", name) for t in texts])
            alone[name] = predict_details(model, encoder, spec, features, batch_size=8)
            folders[name] = tmp_path / name
            model.save_pretrained(folders[name])
        finally:
            model.unload()
    multi = MultiAdapterModel(copy.deepcopy(smollm2_lm.model), tok)
    items = []
    for name in methods:
        adapter = multi.load_adapter(folders[name], name, labels=list(words[name]), max_length=64)
        feats, _ = adapter.encoder.featurize([Example(t, -1, "", name) for t in texts])
        items.append([(name, f) for f in feats])
    mixed = [row for pair in zip(*items) for row in pair]  # a, b, a, b, ...
    preds = predict_features(multi, mixed, batch_size=8)
    for j, (name, _) in enumerate(mixed):
        own = alone[name][j // 2]
        assert preds[j].label == own.label and preds[j].experts == own.experts
        assert preds[j].probabilities == pytest.approx(own.probabilities, abs=1e-5)


def test_adapters_of_another_backbone_or_output_form_are_refused(minilm, tmp_path):
    torch.manual_seed(0)
    model = mept.get_model(with_head(minilm.model, 2, "classifier"), mept.MEPTConfig(prompt_length=2, num_experts=2))
    model.save_pretrained(tmp_path / "minilm")
    model.unload()
    lm = tiny_llama("causal_lm")
    model = mept.get_model(copy.deepcopy(lm), mept.PromptTuningConfig(prompt_length=2))
    model.save_pretrained(tmp_path / "lm")
    model.unload()
    multi = MultiAdapterModel(tiny_bert(2))
    with pytest.raises(MeptError, match="hidden_size=384.*load it onto the backbone it was trained with"):
        multi.load_adapter(tmp_path / "minilm", "a")
    cls = MultiAdapterModel(tiny_llama("cls"))
    with pytest.raises(MeptError, match="outputs causal_lm, the adapters loaded here cls"):
        cls.load_adapter(tmp_path / "lm", "b")
    with pytest.raises(MeptError, match="adapter name 'a.b'"):
        cls.load_adapter(tmp_path / "lm", "a.b")
    multi = MultiAdapterModel(copy.deepcopy(minilm.model))
    multi.load_adapter(tmp_path / "minilm", "a")
    with pytest.raises(MeptError, match="already loaded"):
        multi.load_adapter(tmp_path / "minilm", "a")
    ids = torch.tensor([[101, 2000, 102]])
    with pytest.raises(MeptError, match="unknown adapter"):
        multi(input_ids=ids, adapter_names=["nope"])
    with pytest.raises(MeptError, match="2 names for a batch of 1"):
        multi(input_ids=ids, adapter_names=["a", "a"])
    with pytest.raises(MeptError, match="belongs to a MultiAdapterModel"):
        multi.backbone(input_ids=ids)  # the heads answer only a mixed forward
    with pytest.raises(MeptError, match="train each adapter alone"):
        multi.train()


def test_unload_gives_back_the_backbone_with_its_own_head(minilm, tmp_path):
    backbone = copy.deepcopy(minilm.model)
    head = backbone.classifier
    ids = {"input_ids": torch.tensor([[101, 2000, 102]])}
    with torch.no_grad():
        before = backbone(**ids).logits
    torch.manual_seed(0)
    model = mept.get_model(with_head(minilm.model, 2, "classifier"), mept.MEPTConfig(prompt_length=2, num_experts=2))
    model.save_pretrained(tmp_path / "a")
    model.unload()
    multi = MultiAdapterModel(backbone)
    multi.load_adapter(tmp_path / "a", "a")
    bare = multi.unload()
    assert bare.classifier is head
    with torch.no_grad():
        torch.testing.assert_close(bare(**ids).logits, before)


def test_linear_head_adapters_mix_and_a_native_one_is_refused_beside_them(tmp_path):
    """Each adapter's linear head (MPNet: projection only) serves its rows as alone; head kinds do not mix,
    and a BERT-like [CLS] pooler the linear head bypassed is the backbone's own again after unload."""
    backbone = tiny_mpnet(3)
    ids = torch.randint(3, 128, (4, 7))
    inputs = [{"input_ids": ids[[0, 2]], "attention_mask": torch.ones(2, 7, dtype=torch.long)},
              {"input_ids": ids[[1, 3]], "attention_mask": torch.ones(2, 7, dtype=torch.long)}]
    folders, alone = {}, {}
    for k, labels in enumerate((2, 3)):
        torch.manual_seed(k)
        wrapped = copy.deepcopy(backbone)
        wrapped.classifier.out_proj = nn.Linear(32, labels)
        model = mept.get_model(wrapped, mept.make_config("mept", **SETTINGS["mept"]), head="linear").eval()
        with torch.no_grad():
            for p in model.method.parameters():
                p.add_(torch.randn_like(p) * 0.5)
            alone[f"a{k}"] = (model(**inputs[k]), None)
        folders[f"a{k}"] = tmp_path / f"a{k}"
        model.save_pretrained(folders[f"a{k}"])
    multi, out = mixed_forward(backbone, folders, {"input_ids": ids, "attention_mask": torch.ones(4, 7, dtype=torch.long)},
                               ["a0", "a1", "a0", "a1"])
    assert multi.head == "linear"
    assert_rows_as_alone(out, alone, {"a0": [0, 2], "a1": [1, 3]})
    native = mept.get_model(copy.deepcopy(backbone), mept.make_config("mept", **SETTINGS["mept"]), head="native")
    native.save_pretrained(tmp_path / "native")
    with pytest.raises(MeptError, match="trained with head 'native', the adapters loaded here with 'linear'"):
        multi.load_adapter(tmp_path / "native", "n")
    bert = tiny_bert(2)
    pooler = bert.bert.pooler
    model = mept.get_model(copy.deepcopy(bert), mept.make_config("prompt_tuning"), head_pooling="native", head="linear")
    model.save_pretrained(tmp_path / "bert")
    multi = MultiAdapterModel(bert)
    multi.load_adapter(tmp_path / "bert", "b")
    assert multi.backbone.bert.pooler is not pooler
    assert multi.unload().bert.pooler is pooler
