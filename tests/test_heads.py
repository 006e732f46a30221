"""Task heads: found for every common Hugging Face family, trained and saved, or refused clearly."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from torch import nn

import mept
from mept.errors import MeptError
from tests.conftest import reviews, tiny_bert, tiny_llama, tiny_model_dir, tiny_mpnet

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


# --- head="linear": one linear layer on the pooled state -------------------------------------------------

def _pooled_final_state(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    last = out.hidden_states[-1]  # slots already removed
    weights = mask[..., None].float()
    return out.logits, (last * weights).sum(1) / weights.sum(1)


@pytest.mark.parametrize("method", ["mept", "lora"])
def test_linear_head_is_one_linear_layer_on_the_mean_pooled_state(method, tmp_path):
    """MPNet's own head adds a d x d dense + tanh layer; the linear head drops it, keeps the (seeded) output
    projection, reads the mean of the final states over real tokens, and saves and reloads to the same logits."""
    native = mept.get_model(tiny_mpnet(), mept.make_config(method, **(PROMPTS if method == "mept" else {})),
                            head="native")
    backbone = tiny_mpnet()
    projection = backbone.classifier.out_proj
    frozen = {k: v.clone() for k, v in backbone.state_dict().items() if not k.startswith("classifier")}  # PEFT renames
    model = mept.get_model(backbone, mept.make_config(method, **(PROMPTS if method == "mept" else {})), head="linear")
    assert model.head == "linear" and native.head == "native"
    trained = {n for n, p in model.named_parameters() if p.requires_grad and "classifier" in n}
    assert {n.rsplit(".", 2)[-2:] == ["out_proj", n.rsplit(".", 1)[1]] for n in trained} == {True}  # PEFT: in a wrapper
    assert len(trained) == 2 and not any("dense" in n for n in trained)
    assert model.parameter_report()["head"] == 3 * 32 + 3
    assert native.parameter_report()["head"] == 32 * 32 + 32 + 3 * 32 + 3
    ids, mask = torch.randint(3, 128, (3, 9)), torch.ones(3, 9, dtype=torch.long)
    mask[0, 6:] = 0
    model.eval()
    logits, pooled = _pooled_final_state(model, ids, mask)
    torch.testing.assert_close(logits, projection(pooled), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))  # saved weights that differ from any fresh model's
        logits = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "adapter")
    meta = "mept_config.json" if method == "lora" else "adapter_config.json"  # a baseline's file beside PEFT's
    assert json.loads((tmp_path / "adapter" / meta).read_text())["head"] == "linear"
    fresh = tiny_mpnet()
    assert not fresh.load_state_dict(frozen, strict=False).unexpected_keys
    reloaded = mept.load(fresh, tmp_path / "adapter").eval()
    assert reloaded.head == "linear"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids, attention_mask=mask).logits, logits)


def test_an_adapter_saved_before_the_head_setting_reloads_with_its_native_head(tmp_path):
    model = mept.get_model(tiny_mpnet(), mept.make_config("mept", **PROMPTS), head="native").eval()
    model.save_pretrained(tmp_path / "old")
    config = tmp_path / "old" / "adapter_config.json"
    meta = json.loads(config.read_text())
    del meta["head"]  # as mept wrote it before head= existed
    config.write_text(json.dumps(meta))
    reloaded = mept.load(tiny_mpnet(), tmp_path / "old")
    assert reloaded.head == "native" and isinstance(reloaded.backbone.classifier.dense, nn.Linear)
    from mept.harness.train_config import migrate_run_config

    assert migrate_run_config({"mixed_precision": "no"})["head"] == "native"  # a run saved before it, too


def test_linear_head_on_a_bert_encoder_skips_the_cls_pooler_only_when_it_reads_it():
    """BERT's classifier is linear already; with the [CLS] pooler (head_pooling=native) its dense + tanh layer
    goes, with mean pooling nothing changes."""
    ids, mask = torch.randint(3, 128, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    backbone = tiny_bert()
    model = mept.get_model(backbone, mept.make_config("prompt_tuning"), head_pooling="native", head="linear").eval()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(out.logits, backbone.classifier(out.hidden_states[-1][:, 0]), atol=1e-5, rtol=1e-4)
    mean = mept.get_model(tiny_bert(), mept.make_config("prompt_tuning"), head="linear")
    assert mean.head_pooling == "mean" and isinstance(mean.backbone.bert.pooler.dense, nn.Linear)


def test_linear_head_is_refused_where_it_cannot_be_made_and_accepted_where_it_already_is(tmp_path, capsys):
    with pytest.raises(MeptError, match="head='linear'.*use head='native'"):
        mept.get_model(tiny_distilbert(), mept.make_config("prompt_tuning"), head="linear")
    with pytest.raises(MeptError, match="head must be 'native' or 'linear'"):
        mept.get_model(tiny_bert(), mept.make_config("prompt_tuning"), head="mlp")
    score = mept.get_model(tiny_llama(), mept.make_config("prompt_tuning"), head="linear")  # already one linear layer
    assert score.head == "linear" and score.head_names == ["score"]
    from mept.cli import main

    model = tiny_model_dir(tmp_path / "tiny-bert")
    args = ["train", "--model", str(model), "--train-file", str(reviews(tmp_path / "train.csv", 8)),
            "--verbalizer", "neg", "pos", "--max-steps", "1", "--batch-size", "4", "--max-length", "32", "--no-progress"]
    with pytest.raises(SystemExit) as exit_:  # argparse's own choice check
        main([*args, "--head", "mlp", "--output", str(tmp_path / "bad")])
    assert exit_.value.code == 2 and "--head" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*args, "--head", "linear", "--head-pooling", "native", "--output", str(tmp_path / "ok")]) == 0

    assert json.loads((tmp_path / "ok" / "run_config.json").read_text())["head"] == "linear"
    assert main(["eval", str(tmp_path / "ok"), "--file", str(tmp_path / "train.csv")]) == 0  # rebuilt with its head


def test_the_default_head_is_linear_only_where_that_drops_a_hidden_layer_of_the_heads_own():
    """MPNet's dense + tanh head becomes one linear layer; BERT's mean-read head, a decoder's score head and
    DistilBERT's two-layer head stay as they are (DistilBERT's cannot be made linear, so it is not refused)."""
    backbone = tiny_mpnet()
    own = backbone.classifier
    model = mept.get_model(backbone, mept.make_config("prompt_tuning"))
    assert model.head == "linear" and backbone.classifier is not own
    assert model.unload().classifier is own  # the backbone handed back has its own head again
    bert = mept.get_model(tiny_bert(), mept.make_config("prompt_tuning"))
    assert bert.head == "native" and isinstance(bert.backbone.bert.pooler.dense, nn.Linear)
    assert mept.get_model(tiny_llama(), mept.make_config("prompt_tuning")).head == "native"
    assert mept.get_model(tiny_distilbert(), mept.make_config("prompt_tuning")).head == "native"
