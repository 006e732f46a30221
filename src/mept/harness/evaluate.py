"""Predict and score, per task, for every output form.

Classification on text-to-text and causal models uses *rank classification*
by default (the verbalizer word with the highest likelihood wins), which
never produces an out-of-set answer; ``eval_mode="generate"`` reproduces the
authors' code's protocol (greedy generation of up to 10 tokens, normalised, exact match to a verbalizer
word; anything else counts as wrong; the paper does not state one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from mept.core.pathways import RoutingTrace
from mept.core.routing import trace_of
from mept.core.routing_health import routing_health
from mept.data.encode import ANSWER_SEP, Encoder, Feature, pad_list, task_logits
from mept.data.metrics import CLASS_METRICS, answer_normalize, class_metrics, class_report, compute_metrics
from mept.data.registry import TaskSpec
from mept.errors import MeptError
from mept.harness.precision import autocast
from mept.model.adapter import AdapterModel

# How a text-to-text or causal model answers a classification task: the label word it scores highest, or the
# text it generates (matched against the label words).
EvalMode = Literal["rank", "generate"]


def batches(features: list[Feature], size: int) -> Iterator[list[Feature]]:
    for i in range(0, len(features), size):
        yield features[i : i + size]


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the bookkeeping tensors the trainer uses but the model must not see."""
    return {k: v for k, v in batch.items() if k not in ("class_ids", "allowed")}


@dataclass
class BatchScores:
    """One batch through the model, the way its task is answered: the one dispatch behind :func:`predict` and
    :func:`predict_details`. Exactly one of ``logits``, ``texts``, ``scores`` is set."""

    logits: torch.Tensor | None = None  # (B, C): the head's class logits (cls, image_cls)
    texts: list[str] | None = None  # generated answers (generation tasks, eval_mode="generate")
    scores: torch.Tensor | None = None  # (B, C_task): rank scores of the task's label words
    traces: list[dict[int, tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)  # per forward

    def experts(self, trace: dict[int, tuple[torch.Tensor, torch.Tensor]], rows: int) -> list[list[int]]:
        """Top-1 expert per row and prompted layer (B, L) of one forward's trace (empty lists: nothing routed)."""
        return torch.stack([c for _, c in trace.values()], 1).tolist() if trace else [[] for _ in range(rows)]


def score_batch(model: AdapterModel, encoder: Encoder, spec: TaskSpec, batch: dict[str, torch.Tensor],
                chunk: list[Feature], eval_mode: EvalMode) -> BatchScores:
    """The model's answer material for one batch: the head's logits, generated text, or rank scores."""
    if encoder.form in ("cls", "image_cls"):
        out = model(**model_inputs(batch))
        return BatchScores(logits=out.logits.float(), traces=[trace_of(out.routes)])
    if spec.kind == "generation" or eval_mode == "generate":
        texts, out = generate_answers(model, encoder, batch, max_new_tokens=32 if spec.kind == "generation" else 10)
        return BatchScores(texts=texts, traces=[trace_of(out.routes)])
    scores, traces = _rank_scores(model, encoder, batch, chunk, spec)
    return BatchScores(scores=scores, traces=traces)


def _scored_batches(model: AdapterModel, encoder: Encoder, spec: TaskSpec, features: list[Feature], batch_size: int,
                    eval_mode: EvalMode, precision: str | None, progress: bool = False
                    ) -> Iterator[tuple[list[Feature], dict[str, torch.Tensor], BatchScores]]:
    """Every batch of ``features`` scored in eval mode, in the run's precision (``mixed_precision_ran``)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), autocast(precision, device):
        for chunk in tqdm(list(batches(features, batch_size)), desc=f"eval {spec.name}", disable=not progress,
                          leave=False):
            batch = to_device(encoder.collate(chunk, train=False), device)
            yield chunk, batch, score_batch(model, encoder, spec, batch, chunk, eval_mode)


def predict(
    model: AdapterModel,
    encoder: Encoder,
    spec: TaskSpec,
    features: list[Feature],
    batch_size: int,
    eval_mode: EvalMode = "rank",
    progress: bool = False,
    routes: list[dict[int, tuple[torch.Tensor, torch.Tensor]]] | None = None,
    precision: str | None = None,
) -> list[Any]:
    """Label ids for classification tasks, answer strings for generation tasks.

    ``routes``, when given, receives each batch's routing (:func:`mept.core.routing.trace_of` of the
    scored forward's ``routes``) so the routing health is measured on the very forwards that were scored.
    ``precision``: the run's ``mixed_precision_ran`` (:mod:`mept.harness.precision`; None: fp32).
    """
    preds: list[Any] = []
    for _, batch, s in _scored_batches(model, encoder, spec, features, batch_size, eval_mode, precision, progress):
        if s.logits is not None:
            logits = task_logits(s.logits, batch)  # (B, C)
            if encoder.form == "cls":
                words = encoder.labels.task_words[spec.name]
                preds += [words.index(c) for c in logits.argmax(-1).tolist()]
            else:
                preds += logits.argmax(-1).tolist()
        elif s.texts is not None:
            preds += s.texts if spec.kind == "generation" else [answer_label(t, spec) for t in s.texts]
        else:
            preds += s.scores.argmax(-1).tolist()
        if routes is not None and model.routed:
            routes.append(s.traces[-1])  # rank: the last label word's pass, as the health report always read
    return preds


@dataclass
class Prediction:
    """One example's answer, as ``mept predict`` writes it.

    ``label`` indexes the task's verbalizer (-1: a generated answer outside it); ``probabilities``
    is the model's distribution over the task's labels (None under ``eval_mode="generate"``);
    ``experts`` is the top-1 expert at each prompted layer, in layer order (empty for unrouted methods).
    """

    label: int
    probability: float | None
    probabilities: list[float] | None
    experts: list[int] = field(default_factory=list)


def predict_details(
    model: AdapterModel,
    encoder: Encoder,
    spec: TaskSpec,
    features: list[Feature],
    batch_size: int,
    eval_mode: EvalMode = "rank",
    precision: str | None = None,
) -> list[Prediction]:
    """Classification predictions with their probability and the experts the router chose.

    The experts come from the pass that reads the input; for rank classification on a causal
    model that is the pass scoring the first label word (its text tokens route the same way
    up to the answer, which the pooled router input includes).
    """
    out: list[Prediction] = []
    for chunk, _, s in _scored_batches(model, encoder, spec, features, batch_size, eval_mode, precision):
        labels: list[int] | None = None
        probs: torch.Tensor | None = None
        if s.logits is not None:
            logits = s.logits[:, encoder.labels.task_words[spec.name]] if encoder.form == "cls" else s.logits
            probs = logits.softmax(-1)  # (B, C_task), in label-id order
        elif s.texts is not None:
            labels = [answer_label(t, spec) for t in s.texts]
        else:
            probs = s.scores.softmax(-1)  # (B, C_task): the label words' likelihoods, normalised
        out += predictions_of(probs, labels, s.experts(s.traces[0], len(chunk)))
    return out


def predictions_of(probs: torch.Tensor | list[torch.Tensor] | None, labels: list[int] | None,
                   experts: list[list[int]]) -> list[Prediction]:
    """Rows' :class:`Prediction` s: the most probable label of each row's distribution over its task's labels.

    ``probs``: (B, C) or one (C_i,) tensor per row (rows of mixed adapters have their own label
    counts); None under ``eval_mode="generate"``, where ``labels`` are the generated ones.
    """
    out = []
    for i, row_experts in enumerate(experts):
        if probs is None:
            out.append(Prediction(labels[i], None, None, row_experts))
            continue
        label = int(probs[i].argmax())
        row = probs[i].tolist()
        out.append(Prediction(label, row[label], row, row_experts))
    return out


def answer_label(text: str, spec: TaskSpec) -> int:
    words = [answer_normalize(w) for w in spec.verbalizer]
    text = answer_normalize(text)
    return words.index(text) if text in words else -1  # out-of-set generations are wrong


def generate_answers(
    model: Any, encoder: Encoder, batch: dict[str, torch.Tensor], max_new_tokens: int, **kwargs: Any
) -> tuple[list[str], Any]:
    """Greedy answers, first line each, and the generation's output (its ``routes``: the routing it used).

    ``kwargs`` go to ``model.generate`` (a mixed-adapter model's ``adapter_names``).
    """
    tok = encoder.processor
    out = model.generate(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=max_new_tokens,
        do_sample=False, pad_token_id=encoder.pad_id, return_dict_in_generate=True, **kwargs,
    )
    sequences = out.sequences
    if encoder.form == "causal_lm":
        sequences = sequences[:, batch["input_ids"].shape[1] :]
    texts = tok.batch_decode(sequences, skip_special_tokens=True)
    return [t.strip().split("\n")[0].strip() for t in texts], out


def _rank(model: AdapterModel, encoder: Encoder, batch: dict[str, torch.Tensor], chunk: list[Feature], spec: TaskSpec) -> list[int]:
    """Pick, per example, the verbalizer word with the highest total log-likelihood."""
    return _rank_scores(model, encoder, batch, chunk, spec)[0].argmax(-1).tolist()


def _rank_scores(
    model: AdapterModel, encoder: Encoder, batch: dict[str, torch.Tensor], chunk: list[Feature], spec: TaskSpec
) -> tuple[torch.Tensor, list[dict[int, tuple[torch.Tensor, torch.Tensor]]]]:
    """Each verbalizer word's total log-likelihood, (B, C), and the routing of each word's pass."""
    targets = encoder.targets(list(spec.verbalizer))
    scores, passes = rank_scores(lambda rows, **inputs: model(**inputs), encoder, batch,
                                 [f.input_ids for f in chunk], [targets] * len(chunk))
    return scores, [trace_of(routes) for _, routes in passes]


def rank_scores(
    forward: Any, encoder: Encoder, batch: dict[str, torch.Tensor], inputs: list[list[int]],
    targets: list[list[list[int]]],
) -> tuple[torch.Tensor, list[tuple[list[int], Any]]]:
    """Rank classification: each row's label words' total log-likelihoods, one pass per word position.

    ``targets[i]`` are row i's label words as token ids; rows may have different words and counts
    (mixed adapters), so pass k scores word k of the rows that have one, calling
    ``forward(rows, **model_inputs)``. Returns (B, max words) scores, -inf past a row's own words,
    and each pass's rows and routes. Only the routes outlive a pass: each pass's logits are (rows, positions,
    vocabulary), and keeping every pass's output held them all at once: 12.3 GB peak on SmolLM2's 49,152-word
    vocabulary over bb-shapes' ten words, 2.9 GB now (benchmarks/studies/memory.md, benchmarks/rank_memory.py).
    """
    device = batch["input_ids"].device
    width = max(len(t) for t in targets)
    scores = torch.full((len(inputs), width), float("-inf"), device=device)
    passes = []
    for k in range(width):
        rows = [i for i, t in enumerate(targets) if len(t) > k]
        words = [targets[i][k] for i in rows]
        if encoder.form == "seq2seq":
            labels = pad_list(words, -100, "right").to(device)
            ids, mask = batch["input_ids"], batch["attention_mask"]
            if len(rows) < len(inputs):
                index = torch.tensor(rows, device=device)
                ids, mask = ids.index_select(0, index), mask.index_select(0, index)
            out = forward(rows, input_ids=ids, attention_mask=mask, labels=labels)
            scored = _sequence_logprob(out.logits, labels)
        else:
            forced = to_device(encoder.teacher_forced([inputs[i] for i in rows], words), device)
            labels = forced.pop("labels")
            out = forward(rows, **forced)
            scored = _sequence_logprob(out.logits[:, :-1], labels[:, 1:])
        scores[rows, k] = scored.float()
        passes.append((rows, out.routes))
        del out, scored
    return scores, passes


def _sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over positions whose label is not -100: (B, T, V), (B, T) -> (B,).

    The softmax runs over the labelled positions only (a label word's few tokens, not every position of the
    text), so the fp32 copy it makes is (tokens, V), not (B, T, V)."""
    keep = labels != -100
    picked = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    logp = logits[keep].float().log_softmax(-1)
    picked[keep] = logp.gather(-1, labels[keep][:, None])[:, 0]
    return picked.sum(-1)


def score(spec: TaskSpec, features: list[Feature], preds: list[Any], class_scores: bool = False) -> dict[str, float]:
    """The task's own metric; with ``class_scores`` also accuracy, macro-F1 and weighted F1 beside it
    (classification tasks: your own data, ``--metric`` other than ``task``, ``mept eval --file``)."""
    examples = [f.example for f in features]
    if spec.metric in ("squad", "exact_match"):
        labels: list[Any] = [e.answers or [e.target] for e in examples]
    else:
        labels = [e.label for e in examples]
    groups = [e.group for e in examples] if spec.metric == "multirc" else None
    result = compute_metrics(spec.metric, preds, labels, groups)
    if class_scores and spec.kind in ("classification", "image") and spec.metric in ("accuracy", "cb", "multirc"):
        result.update({k: v for k, v in class_metrics(preds, labels).items() if k not in result})
    return result


def metric_key(metric: str) -> str:
    """The per-task result key ``--metric`` selects by: ``task`` is each task's own ``score``."""
    return "score" if metric == "task" else metric


def evaluate(
    model: AdapterModel,
    encoder: Encoder,
    specs: dict[str, TaskSpec],
    eval_sets: dict[str, list[Feature]],
    batch_size: int,
    eval_mode: str = "rank",
    progress: bool = False,
    metric: str = "task",
    per_class: bool = False,
    precision: str | None = None,
) -> dict[str, Any]:
    """Per-task metrics plus their ``average`` over tasks of the ``metric`` that selects checkpoints
    (``task``: each task's own score, which the MEPT paper's Table 1 averages), the class metrics' averages
    (``averages``), and for routed methods the routing health of the same forwards (``routing``).
    ``per_class`` adds each task's per-class report and confusion matrix (``reports``, for ``mept eval --file``)."""
    results: dict[str, Any] = {}
    reports: dict[str, Any] = {}
    traces = []
    key = metric_key(metric)
    for task, features in eval_sets.items():
        routes: list = []
        preds = predict(model, encoder, specs[task], features, batch_size, eval_mode, progress, routes=routes,
                        precision=precision)
        # built-in suites selected by their own metric report exactly what they always did
        results[task] = score(specs[task], features, preds, class_scores=metric != "task" or per_class)
        if key not in results[task]:
            raise MeptError(f"--metric {metric} scores classification tasks; {task!r} is {specs[task].kind} "
                            f"(metric {specs[task].metric}): use --metric task")
        if per_class and "macro_f1" in results[task]:  # beside the scores, which stay comparable to training's
            reports[task] = class_report(preds, [f.example.label for f in features], specs[task].verbalizer)
        if routes and routes[0]:
            traces.append(routing_trace(task, routes, [f.example.label for f in features]))
    results_avg = sum(r[key] for r in results.values()) / len(results)
    out: dict[str, Any] = {"tasks": results, "average": results_avg, "metric": metric}
    shared = [m for m in CLASS_METRICS if all(m in r for r in results.values())]
    if shared:
        out["averages"] = {m: sum(r[m] for r in results.values()) / len(results) for m in shared}
    if reports:
        out["reports"] = reports
    if traces:
        out["routing"] = routing_health(traces)
    return out


def routing_trace(task: str, routes: list[dict[int, tuple[torch.Tensor, torch.Tensor]]], labels: list[Any]):
    """Stack per-batch :func:`~mept.core.routing.trace_of` dicts into one task's :class:`RoutingTrace`."""
    layers = list(routes[0])
    probs = torch.cat([torch.stack([r[k][0] for k in layers], 1) for r in routes]).float().cpu()  # (N, L, E)
    chosen = torch.cat([torch.stack([r[k][1] for k in layers], 1) for r in routes]).cpu()  # (N, L)
    return RoutingTrace(task=task, layers=layers, probs=probs.numpy(), chosen=chosen.numpy(),
                        labels=np.asarray(labels) if len(labels) == len(chosen) else None)


__all__ = ["evaluate", "predict", "predict_details", "Prediction", "score", "batches", "to_device", "model_inputs", "ANSWER_SEP"]
