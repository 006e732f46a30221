"""From rendered :class:`Example` s to model inputs, for each output form.

- ``cls``: a classification head over the *label space*: the union of the
  verbalizer words of every task in the run, so mixture training shares one
  head and tasks that share a word (``entailment``) share a class. Each
  example may only choose among its own task's words (``allowed`` mask).
- ``seq2seq``: T5 text-to-text; the decoder produces the verbalizer word / answer.
- ``causal_lm``: a decoder reads ``text`` then ``ANSWER_SEP`` and continues with the target.
- ``image_cls``: pixel values from the model's own image processor.

Inputs are tokenised once, up front; truncation is counted and reported,
never silent. The budget for text tokens is ``max_length`` (``num_slots`` is subtracted only
for runs saved when ``--max-length`` still counted the prompt slots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mept.data.examples import Example
from mept.data.registry import TaskSpec
from mept.errors import MeptError

ANSWER_SEP = "\nAnswer:"


@dataclass
class LabelSpace:
    words: list[str]
    task_words: dict[str, list[int]]  # task -> class ids of its verbalizer, in label-id order

    @classmethod
    def build(cls, specs: list[TaskSpec]) -> "LabelSpace":
        words: list[str] = []
        task_words: dict[str, list[int]] = {}
        for spec in specs:
            ids = []
            for w in spec.verbalizer:
                if w not in words:
                    words.append(w)
                ids.append(words.index(w))
            task_words[spec.name] = ids
        return cls(words, task_words)

    def add_task(self, spec: TaskSpec) -> None:
        """Map an evaluation-only task onto the existing head (cross-task evaluation)."""
        missing = [w for w in spec.verbalizer if w not in self.words]
        if missing:
            raise MeptError(
                f"task {spec.name!r} needs label word(s) {', '.join(missing)} that the trained head does not have "
                f"(it knows {', '.join(self.words)}); evaluate it with a text-to-text or causal model instead"
            )
        self.task_words[spec.name] = [self.words.index(w) for w in spec.verbalizer]

    def allowed(self, task: str) -> torch.Tensor:
        mask = torch.zeros(len(self.words), dtype=torch.bool)
        mask[self.task_words[task]] = True
        return mask


@dataclass
class Feature:
    example: Example
    input_ids: list[int] = field(default_factory=list)
    target_ids: list[int] = field(default_factory=list)
    truncated: bool = False


class Encoder:
    def __init__(self, form: str, processor: Any, num_slots: int, max_length: int, labels: LabelSpace | None) -> None:
        self.form = form
        self.processor = processor
        self.labels = labels
        self.text_budget = max_length - num_slots

    # --- featurising -------------------------------------------------------------------

    def featurize(self, examples: list[Example], chunk: int = 256) -> tuple[list[Feature], int]:
        """Tokenise every example once; returns the features and how many were truncated.

        Texts are tokenised ``chunk`` at a time, input ids only, and cut to the budget before the
        next chunk: long documents (e-mails, reports) would otherwise sit untruncated in memory all
        at once, with an attention mask and token type ids per token, and the freed heap keeps the
        process's resident memory high for the rest of the run (benchmarks/studies/memory.md).
        """
        if self.form == "image_cls":
            return [Feature(e) for e in examples], 0
        # one encoding for the whole set: a chunk without pairs must not be encoded differently
        paired = self.form == "cls" and any(e.text_pair is not None for e in examples)
        features, truncated = [], 0
        for start in range(0, len(examples), chunk):
            part = self._featurize_chunk(examples[start : start + chunk], paired)
            features += part
            truncated += sum(f.truncated for f in part)
        return features, truncated

    def _featurize_chunk(self, examples: list[Example], paired: bool) -> list[Feature]:
        tok = self.processor
        lean = dict(verbose=False, return_attention_mask=False, return_token_type_ids=False)
        if paired:  # sentence pairs as the tokenizer encodes them ([CLS] a [SEP] b [SEP]), cut longest-first
            texts, pairs = [e.text for e in examples], [e.text_pair or "" for e in examples]
            ids = tok(texts, pairs, **lean)["input_ids"]
            short = tok(texts, pairs, truncation="longest_first", max_length=self.text_budget, **lean)["input_ids"]
        else:  # text-to-text and causal forms read a pair as one text, joined by a space
            texts = [e.text + (" " + e.text_pair if e.text_pair is not None else "")
                     + (ANSWER_SEP if self.form == "causal_lm" else "") for e in examples]
            # verbose=False: transformers' "longer than the specified maximum" warning is moot, we truncate below
            ids = tok(texts, add_special_tokens=True, **lean)["input_ids"]
        targets = self.targets([e.target for e in examples]) if self.form in ("seq2seq", "causal_lm") else [[] for _ in examples]
        features = []
        for i, (e, x, y) in enumerate(zip(examples, ids, targets)):
            budget = self.text_budget - (len(y) if self.form == "causal_lm" else 0)
            cut = len(x) > budget
            if cut and paired:
                x = short[i]
            elif cut:  # keep the start (template prefix) and the final token (EOS / answer cue)
                x = x[: budget - 1] + x[-1:]
            features.append(Feature(e, x, y, cut))
        return features

    def targets(self, words: list[str]) -> list[list[int]]:
        """Token ids of target texts: the decoder's labels (seq2seq) or the continuation after
        ``ANSWER_SEP`` (causal: a leading space, then EOS). Training and rank scoring both use this."""
        tok = self.processor
        if self.form == "seq2seq":
            return tok(words)["input_ids"]
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        return [t + eos for t in tok([" " + w for w in words], add_special_tokens=False)["input_ids"]]

    # --- batching --------------------------------------------------------------------------

    def teacher_forced(self, inputs: list[list[int]], targets: list[list[int]]) -> dict[str, torch.Tensor]:
        """Causal LM batch of ``input + target`` rows, right-padded, with labels only on the target."""
        labels = [[-100] * len(x) + y for x, y in zip(inputs, targets)]
        return {**_pad([x + y for x, y in zip(inputs, targets)], self.pad_id, "right"),
                "labels": pad_list(labels, -100, "right")}

    def collate(self, features: list[Feature], train: bool) -> dict[str, torch.Tensor]:
        if self.form == "image_cls":
            images = [f.example.image for f in features]
            batch = dict(self.processor(images=images, return_tensors="pt"))
            batch["class_ids"] = torch.tensor([f.example.label for f in features])
            return batch
        if self.form == "causal_lm" and train:
            return self.teacher_forced([f.input_ids for f in features], [f.target_ids for f in features])
        batch = self.text_inputs(features)
        if self.form == "seq2seq":
            batch["labels"] = pad_list([f.target_ids for f in features], -100, "right")
        if self.form == "cls":
            if self.labels is None:
                raise ValueError("a 'cls' Encoder needs its LabelSpace (labels=...) to collate class ids")
            batch["class_ids"] = torch.tensor(
                [self.labels.task_words[f.example.task][f.example.label] for f in features]
            )
            batch["allowed"] = torch.stack([self.labels.allowed(f.example.task) for f in features])
        return batch

    def text_inputs(self, features: list[Feature]) -> dict[str, torch.Tensor]:
        """Padded ``input_ids`` and ``attention_mask`` of text features, whatever task each belongs to."""
        side = "left" if self.form == "causal_lm" else "right"  # decoders generate from the right edge
        return _pad([f.input_ids for f in features], self.pad_id, side)

    @property
    def pad_id(self) -> int:
        return self.processor.pad_token_id if self.processor.pad_token_id is not None else 0


def task_logits(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Classification logits (B, C) restricted to each example's own task's words (the ``allowed`` mask).

    Training and prediction both call this, so a mixture-trained head never scores a word that is
    not an answer of the example's task. Image batches carry no mask: their logits pass through.
    """
    allowed = batch.get("allowed")
    return logits if allowed is None else logits.masked_fill(~allowed, float("-inf"))


def pad_list(rows: list[list[int]], value: int, side: str) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, r in enumerate(rows):
        if side == "right":
            out[i, : len(r)] = r
        else:
            out[i, width - len(r) :] = r
    return torch.from_numpy(out)


def _pad(rows: list[list[int]], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    ids = pad_list(rows, pad_id, side)
    mask = pad_list([[1] * len(r) for r in rows], 0, side)
    return {"input_ids": ids, "attention_mask": mask}
