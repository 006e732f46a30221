"""Task heads: found for every common Hugging Face family, trained and saved, or refused clearly."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

import mept
from mept.errors import MeptError
from tests.conftest import reviews, tiny_bert, tiny_llama, tiny_model_dir

PROMPTS = {"prompt_length": 4, "num_experts": 3}


def tiny_distilbert():
    cfg = transformers.DistilBertConfig(
        vocab_size=128, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64, num_labels=2,
        dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0, pad_token_id=0,
    )
    return transformers.DistilBertForSequenceClassification(cfg).eval()


def tiny_bart():
    cfg = transformers.BartConfig(
        vocab_size=128, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        num_labels=2, dropout=0.0, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    return transformers.BartForSequenceClassification(cfg).eval()


def tiny_t5_cls():
    cfg = transformers.T5Config(
        vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0, num_labels=2,
    )
    return transformers.T5ForSequenceClassification(cfg).eval()


def tiny_bert_qa():
    cfg = transformers.BertConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return transformers.BertForQuestionAnswering(cfg).eval()


FAMILIES = {  # builder, the heads that must be found
    "bert": (tiny_bert, ["classifier"]),
    "distilbert": (tiny_distilbert, ["pre_classifier", "classifier"]),
    "bart": (tiny_bart, ["classification_head"]),
    "t5": (tiny_t5_cls, ["classification_head"]),
    "llama": (tiny_llama, ["score"]),
    "bert_qa": (tiny_bert_qa, ["qa_outputs"]),
}


def inputs(eos: int = 2):
    ids = torch.randint(5, 100, (4, 10))
    ids[:, -1] = eos  # BART / T5 classify from the last end-of-sequence token
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", ["mept", "prompt_tuning"])
def test_each_family_trains_its_whole_head_and_saves_it(family, method, tmp_path):
    build, heads = FAMILIES[family]
    backbone = build()
    settings = {k: v for k, v in PROMPTS.items() if method == "mept" or k == "prompt_length"}
    model = mept.get_model(backbone, mept.make_config(method, **settings)).train()
    assert model.head_names == heads
    head_params = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")}
    expected = {f"backbone.{h}.{n}" for h in heads for n, _ in backbone.get_submodule(h).named_parameters()}
    assert head_params == expected
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n in expected}
    batch = inputs(eos=backbone.config.eos_token_id or 2)
    opt = torch.optim.SGD([p for g in model.param_groups(0.1, 0.1) for p in g["params"]], lr=0.1)
    out = model(**batch)
    if family == "bert_qa":
        loss = out.start_logits.pow(2).mean() + out.end_logits.pow(2).mean()
    else:
        loss = nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in expected), "a head did not train"
    model.save_pretrained(tmp_path)
    saved = mept.core.adapter_format.read_adapter_config(tmp_path)
    assert saved["modules_to_save"] == heads
    model.eval()
    want = model(**batch)
    model.unload()
    fresh = build()  # same frozen body, a new random head: only the saved head can make the logits agree
    body = {k: v for k, v in backbone.state_dict().items() if not k.startswith(tuple(f"{h}." for h in heads))}
    fresh.load_state_dict(body, strict=False)
    restored = mept.load(fresh, tmp_path).eval()
    got = restored(**batch)
    key = "start_logits" if family == "bert_qa" else "logits"
    assert torch.allclose(got[key], want[key], atol=1e-6)


class Unnamed(nn.Module):
    """A sequence classifier whose head has a name no Hugging Face family uses."""

    def __init__(self) -> None:
        super().__init__()
        inner = tiny_bert()
        self.config = inner.config
        self.bert = inner.bert
        self.to_labels = nn.Linear(32, 2)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return transformers.modeling_outputs.SequenceClassifierOutput(logits=self.to_labels(hidden[:, 0]))

    @property
    def base_model(self):
        return self.bert


Unnamed.__name__ = "UnnamedForSequenceClassification"


def test_classifier_with_an_unknown_head_is_refused_until_named():
    with pytest.raises(MeptError, match="modules_to_save"):
        mept.get_model(Unnamed(), mept.make_config("prompt_tuning"))
    model = mept.get_model(Unnamed(), mept.make_config("prompt_tuning"), modules_to_save=["to_labels"])
    assert model.head_names == ["to_labels"]
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "method.prompts", "backbone.to_labels.weight", "backbone.to_labels.bias"}


def test_modules_to_save_naming_a_missing_module_is_a_clear_error():
    with pytest.raises(MeptError, match="no submodule 'clasifier'"):
        mept.get_model(tiny_bert(), mept.make_config("prompt_tuning"), modules_to_save=["clasifier"])


def test_base_and_causal_models_need_no_head():
    model = mept.get_model(tiny_llama("causal_lm"), mept.make_config("prompt_tuning"))
    assert model.head_names == []
    assert model.parameter_report()["head"] == 0


def test_cli_modules_to_save_is_checked_before_anything_is_written(tmp_path, capsys):
    from mept.cli import main

    model = tiny_model_dir(tmp_path / "tiny-bert")
    args = ["train", "--model", str(model), "--train-file", str(reviews(tmp_path / "train.csv", 8)),
            "--verbalizer", "neg", "pos", "--max-steps", "1", "--batch-size", "4", "--max-length", "32",
            "--no-progress"]
    assert main([*args, "--modules-to-save", "clasifier", "--output", str(tmp_path / "bad")]) == 2
    assert "error: modules_to_save: BertForSequenceClassification has no submodule 'clasifier'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main([*args, "--modules-to-save", "classifier", "bert.pooler", "--output", str(tmp_path / "ok")]) == 0
    saved = mept.core.adapter_format.read_adapter_config(tmp_path / "ok" / "best")
    assert saved["modules_to_save"] == ["classifier", "bert.pooler"]
    assert saved_keys(tmp_path / "ok" / "best") >= {"head.bert.pooler.dense.weight", "head.classifier.weight"}


def saved_keys(folder):
    from safetensors.torch import load_file

    return set(load_file(str(folder / "adapter_model.safetensors")))
