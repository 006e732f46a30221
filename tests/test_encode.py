"""One home each: causal targets are tokenised once (training and rank scoring agree), the allowed-label
mask is applied once (training and prediction agree), the routers' auxiliary loss is added once."""

from __future__ import annotations

import dataclasses
import weakref

import torch
import torch.nn.functional as F
import transformers

import mept
from mept.data import get_task
from mept.data.encode import Encoder, LabelSpace, task_logits
from mept.data.examples import Example
from mept.harness.evaluate import _rank, predict, rank_scores, to_device
from mept.harness.train_loop import task_loss
from mept.model.backbones import resolve

TEXTS = ["the film was great", "a dull and tedious plot", "i loved every minute", "nothing happens at all"]


def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(resolve("minilm"))


def causal_model(vocab: int):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0)
    return mept.get_model(transformers.LlamaForCausalLM(cfg).eval(), mept.make_config("prompt_tuning", prompt_length=3)).eval()


def test_rank_scoring_reads_the_targets_training_learns():
    tok = tokenizer()
    model = causal_model(tok.vocab_size)
    words = ["yes", "no"]
    encoder = Encoder("causal_lm", tok, model.num_slots, 64, None)
    examples = [Example(text=t, label=0, target=words[0], task="t") for t in TEXTS]
    features, _ = encoder.featurize(examples)
    spec = dataclasses.replace(get_task("bb-rte"), verbalizer=tuple(words))
    batch = to_device(encoder.collate(features, train=False), torch.device("cpu"))
    chosen = _rank(model, encoder, batch, features, spec)
    # The training batch for each word: its summed token log-likelihood decides the rank.
    with torch.no_grad():
        totals = []
        for word in words:
            feats, _ = encoder.featurize([dataclasses.replace(e, target=word) for e in examples])
            train_batch = encoder.collate(feats, train=True)
            logits = model(input_ids=train_batch["input_ids"], attention_mask=train_batch["attention_mask"]).logits
            labels = train_batch["labels"][:, 1:]
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="none")
            totals.append(-nll.sum(-1))
    assert chosen == torch.stack(totals, -1).argmax(-1).tolist()
    assert encoder.targets(words) == [f.target_ids for f in encoder.featurize(
        [Example(text="x", label=0, target=w, task="t") for w in words])[0]]


def test_rank_scoring_holds_no_passs_logits_once_it_is_scored():
    # every verbalizer word is one pass of (rows, positions, vocabulary) logits; keeping each pass's output for
    # its routes held them all at once (12.5 GB on SmolLM2 over bb-diverse's ten shapes: the kernel killed it)
    tok = tokenizer()
    model = causal_model(tok.vocab_size)
    words = ["yes", "no", "maybe", "never", "always"]
    encoder = Encoder("causal_lm", tok, model.num_slots, 64, None)
    features, _ = encoder.featurize([Example(text=t, label=0, target=words[0], task="t") for t in TEXTS])
    batch = to_device(encoder.collate(features, train=False), torch.device("cpu"))
    alive = []

    def forward(rows, **inputs):
        out = model(**inputs)
        alive.append(weakref.ref(out.logits))
        return out

    with torch.no_grad():
        scores, passes = rank_scores(forward, encoder, batch, [f.input_ids for f in features],
                                     [encoder.targets(words)] * len(features))
        assert len(alive) == len(words) and all(ref() is None for ref in alive)  # each freed after its pass
        assert [rows for rows, _ in passes] == [list(range(len(TEXTS)))] * len(words)
        spec = dataclasses.replace(get_task("bb-rte"), verbalizer=tuple(words))
        assert scores.argmax(-1).tolist() == _rank(model, encoder, batch, features, spec)


def test_training_and_prediction_apply_the_same_allowed_label_mask():
    rte, cb = get_task("bb-rte"), get_task("bb-cb")
    labels = LabelSpace.build([rte, cb])
    batch = {"allowed": torch.stack([labels.allowed(rte.name), labels.allowed(cb.name)])}
    logits = torch.zeros(2, len(labels.words))
    logits[:, labels.task_words[cb.name][-1]] = 5.0  # a word only CB has: RTE's example must not pick it
    masked = task_logits(logits, batch)
    assert masked.argmax(-1)[0].item() in labels.task_words[rte.name]
    assert masked.argmax(-1)[1].item() == labels.task_words[cb.name][-1]
    assert torch.equal(task_logits(logits, {}), logits)  # image batches have no mask


def test_classification_loss_gets_the_routers_auxiliary_loss_once():
    torch.manual_seed(0)
    tok = tokenizer()
    cfg = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    backbone = transformers.BertForSequenceClassification(cfg)
    model = mept.get_model(backbone, mept.make_config("mept", num_experts=3, prompt_length=3, balance_loss=0.5)).train()
    rte = get_task("bb-rte")
    encoder = Encoder("cls", tok, model.num_slots, 64, LabelSpace.build([rte]))
    features, _ = encoder.featurize([Example(text=t, label=i % 2, target="", task=rte.name) for i, t in enumerate(TEXTS)])
    batch = encoder.collate(features, train=True)
    torch.manual_seed(1)
    loss = task_loss(model, batch, "cls")
    torch.manual_seed(1)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"))
    plain, aux = F.cross_entropy(task_logits(out.logits, batch), batch["class_ids"]), out.router_aux_loss
    assert aux is not None and aux > 0  # already weighted by balance_loss (MEPTConfig)
    assert torch.allclose(loss, plain + aux)
    assert predict(model, encoder, rte, features, 4)  # prediction runs through the same mask
