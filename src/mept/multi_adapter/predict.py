"""``mept predict``'s answers for rows of mixed adapters, in shared batches.

Rows are read as ``mept predict`` reads a file's (the run's fields and template:
:func:`mept.data.custom.examples_from_rows`), tokenised by their adapter's own encoder (its text
budget; truncation is counted and reported), and scored by the same pieces as
:func:`mept.harness.evaluate.predict_details`: a head's logits over the row's task words, rank
classification over its label words (:func:`mept.harness.evaluate.rank_scores`, per-row words), or a
generated answer, in the precision each run ran in. Only the batch differs: its rows may name
different adapters (rows whose runs are scored differently, or ran in another precision, go in a
forward of their own).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from mept.data.custom import FILE_FIELDS, examples_from_rows
from mept.data.encode import Feature
from mept.data.jsonl import Row
from mept.data.template import parse_template
from mept.errors import MeptError
from mept.harness.evaluate import (
    Prediction,
    answer_label,
    batches,
    generate_answers,
    predictions_of,
    rank_scores,
    to_device,
)
from mept.harness.precision import autocast
from mept.inject.spec import BackboneSpec
from mept.multi_adapter.mix import Adapter, AdapterRoutes


class MultiAdapterModel(Protocol):
    """What predicting asks of a :class:`~mept.multi_adapter.model.MultiAdapterModel` (which imports this
    module, so it is named here by what it offers, not imported)."""

    adapters: dict[str, Adapter]
    spec: BackboneSpec
    device: torch.device

    def __call__(self, **inputs: Any) -> Any: ...



def input_fields(adapter: "Adapter") -> list[str]:
    """The fields an input row of ``adapter`` needs: its template's, or its text (and pair) field."""
    cfg = adapter.run_config
    if cfg is None:
        return ["text"]
    if cfg.template:
        return list(dict.fromkeys(parse_template(cfg.template).fields))
    return [cfg.text_field] + ([cfg.text_pair_field] if cfg.text_pair_field else [])


def featurize_rows(adapter: "Adapter", inputs: list[Any], where: str = "input") -> tuple[list[Feature], int]:
    """Features of ``inputs`` (texts, or objects with the adapter's fields) and how many were truncated.

    A text stands for the adapter's one field; an adapter that reads several (sentence pairs, a
    template over two fields) takes objects. Bad rows are one error naming ``where:N``.
    """
    if adapter.task is None or adapter.encoder is None:
        raise MeptError(f"adapter {adapter.name!r} has no label words; load it from its run folder, or with labels=[...]")
    fields = input_fields(adapter)
    rows = []
    for i, value in enumerate(inputs):
        if isinstance(value, str):
            if len(fields) != 1:
                raise MeptError(f"{where}:{i + 1}: adapter {adapter.name!r} reads the fields {', '.join(fields)}; "
                                f"send an object with them, not a text")
            value = _nested(fields[0], value)
        elif not isinstance(value, dict):
            raise MeptError(f"{where}:{i + 1}: expected a text or an object of fields, got {type(value).__name__}")
        rows.append(Row(value, where, i + 1))
    cfg = adapter.run_config
    settings = {name: getattr(cfg, name) for name in FILE_FIELDS} if cfg is not None else {}
    examples = examples_from_rows(rows, adapter.task, **settings, labelled=False, where=where)
    return adapter.encoder.featurize(examples)


def _nested(field: str, text: str) -> dict[str, Any]:
    """``doc.body`` + text -> ``{"doc": {"body": text}}``: a dotted field reads nested objects."""
    value: Any = text
    for part in reversed(field.split(".")):
        value = {part: value}
    return value


@torch.no_grad()
def predict_features(model: "MultiAdapterModel", items: list[tuple[str, Feature]], batch_size: int) -> list[Prediction]:
    """One :class:`~mept.harness.evaluate.Prediction` per (adapter name, feature), in order, ``batch_size`` rows a forward."""
    out: list[Prediction] = []
    for chunk in batches(items, batch_size):
        adapters = [model.adapters[name] for name, _ in chunk]
        out += _predict(model, adapters, [f for _, f in chunk])
    return out


def _predict(model: "MultiAdapterModel", adapters: list["Adapter"], features: list[Feature]) -> list[Prediction]:
    """Rows scored alike share a forward: how (rank / head, or generated) and in which precision their runs ran."""
    kinds = [(model.spec.task_type != "cls" and a.eval_mode == "generate", a.precision) for a in adapters]
    if len(set(kinds)) > 1:  # one batch per kind, answers back in order
        answers: dict[int, Prediction] = {}
        for kind in dict.fromkeys(kinds):
            rows = [i for i, k in enumerate(kinds) if k == kind]
            answers.update(zip(rows, _predict(model, [adapters[i] for i in rows], [features[i] for i in rows])))
        return [answers[i] for i in range(len(features))]
    generate, precision = kinds[0]
    with autocast(precision, model.device):  # mept predict's precision: the one the run ran in
        return _predict_alike(model, adapters, features, generate)


def _predict_alike(model: "MultiAdapterModel", adapters: list["Adapter"], features: list[Feature],
                   generate: bool) -> list[Prediction]:
    encoder = adapters[0].encoder  # the adapters share the tokenizer: any of them pads the batch alike
    batch = to_device(encoder.text_inputs(features), model.device)
    names = [a.name for a in adapters]
    labels = None
    if model.spec.task_type == "cls":
        output = model(**batch, adapter_names=names)
        logits = output.logits.float()  # (B, C) over the widest head; each row reads its own task's words
        probs: list[torch.Tensor] | None = [
            logits[i, a.encoder.labels.task_words[a.task.name]].softmax(-1) for i, a in enumerate(adapters)]
        routes = output.routes
    elif generate:
        texts, output = generate_answers(model, encoder, batch, max_new_tokens=10, adapter_names=names)
        labels = [answer_label(t, a.task) for t, a in zip(texts, adapters)]
        probs, routes = None, output.routes
    else:
        words = {a.name: a.encoder.targets(list(a.task.verbalizer)) for a in adapters}
        targets = [words[a.name] for a in adapters]
        scores, passes = rank_scores(lambda rows, **inputs: model(**inputs, adapter_names=[names[i] for i in rows]),
                                     encoder, batch, [f.input_ids for f in features], targets)
        probs = [scores[i, : len(t)].softmax(-1) for i, t in enumerate(targets)]
        routes = passes[0][1]  # the first word's pass reads every row, as predict_details reports it
    return predictions_of(probs, labels, row_experts(routes, len(features)))


def row_experts(routes: dict[str, AdapterRoutes] | None, batch_size: int) -> list[list[int]]:
    """Each row's top-1 expert per prompted layer, in layer order ([] for rows of unrouted adapters)."""
    experts: list[list[int]] = [[] for _ in range(batch_size)]
    for own in (routes or {}).values():
        for row, chosen in zip(own.rows.tolist(), own.experts().tolist()):
            experts[row] = chosen
    return experts
