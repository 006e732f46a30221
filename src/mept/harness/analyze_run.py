"""Run a trained model over evaluation data and collect what the analysis needs.

Per task: the routing probabilities and top-1 expert of every example at
every prompted layer, the final-layer hidden states mean-pooled over real
tokens (prompt slots are never part of the returned states), and, for
comparison, the same pooled states and input embeddings from the frozen
backbone with no prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mept.analysis.report import write_report, write_representation_report
from mept.core.routing import masked_mean, trace_of
from mept.data.encode import Encoder, Feature
from mept.errors import MeptError
from mept.harness.evaluate import batches, model_inputs, routing_trace, to_device
from mept.model.adapter import AdapterModel
from mept.model.backbones import load_backbone


@torch.no_grad()
def collect(
    model: AdapterModel, encoder: Encoder, task: str, features: list[Feature], batch_size: int = 32, baseline: bool = False
) -> dict[str, Any]:
    """Routing trace and pooled representations of one task's examples."""
    model.eval()
    device = next(model.parameters()).device
    routes, pooled, base_pooled, base_inputs = [], [], [], []
    for chunk in batches(features, batch_size):
        batch = model_inputs(to_device(encoder.collate(chunk, train=False), device))
        batch.pop("labels", None)
        out = model(**batch, output_hidden_states=True)
        if trace := trace_of(out.routes):
            routes.append(trace)
        mask = batch.get("attention_mask")
        pooled.append(_pool(_last_hidden(out), mask))
        if baseline:  # the same backbone with the adapter off: no prompts at all
            with model.disabled():
                base = model(**batch, output_hidden_states=True)
            states = base.encoder_hidden_states if hasattr(base, "encoder_hidden_states") and base.encoder_hidden_states else base.hidden_states
            base_pooled.append(_pool(states[-1], mask))
            base_inputs.append(_pool(states[0], mask))
    result: dict[str, Any] = {
        "features": torch.cat(pooled).numpy(),
        "labels": np.array([f.example.label for f in features]),
    }
    if routes:
        result["trace"] = routing_trace(task, routes, result["labels"])
    if baseline:
        result["baseline_features"] = torch.cat(base_pooled).numpy()
        result["input_embeddings"] = torch.cat(base_inputs).numpy()
    return result


def _last_hidden(out: Any) -> torch.Tensor:
    states = getattr(out, "encoder_hidden_states", None) or out.hidden_states
    return states[-1]


def _pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        mask = torch.ones(hidden.shape[:2], device=hidden.device)
    return masked_mean(hidden.float(), mask).cpu()


@torch.no_grad()
def embed_texts(texts: list[str], feature_model: str, batch_size: int = 32, max_length: int = 256) -> np.ndarray:
    """(N, d) mean-pooled last-layer states of ``feature_model`` (an alias or hub id) for raw texts.

    The paper's Fig. 4a embeds the raw data with BERT; any encoder can stand in (offline: ``mpnet``,
    ``minilm``). The texts are the examples' rendered inputs (the task prefix included).
    """
    backbone = load_backbone(feature_model, "base")
    model, tokenizer = backbone.model.eval(), backbone.processor
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (B, T, d)
        out.append(_pool(hidden, batch["attention_mask"]))
    return torch.cat(out).numpy()


def analyze_run(
    prepared: Any, out: Path, max_per_task: int = 200, baseline: bool = True, by_label: bool = False,
    sets: dict[str, list[Feature]] | None = None, feature_model: str | None = None,
) -> dict[str, Any]:
    """Collect per task (at most ``max_per_task`` examples each) and write the report folder.

    ``sets``: task -> features to analyse (default the validation split; ``mept analyze --split``).
    ``by_label``: also summarise routing per gold class (``mept analyze --by label``).
    ``feature_model``: also embed the raw inputs with this model for a t-SNE of the data (Fig. 4a).
    """
    if max_per_task < 1:
        raise MeptError(f"max_per_task must be >= 1, got {max_per_task}")
    model, encoder = prepared.model, prepared.encoder
    baseline = baseline and getattr(model, "can_disable", True)  # full fine-tuning keeps no frozen backbone
    traces, features, labels, base, inputs, raw = [], {}, {}, {}, {}, {}
    for task, feats in (prepared.eval_sets if sets is None else sets).items():
        got = collect(model, encoder, task, feats[:max_per_task], prepared.config.eval_batch_size, baseline)
        if "trace" in got:
            traces.append(got["trace"])
        features[task], labels[task] = got["features"], got["labels"]
        if baseline:
            base[task], inputs[task] = got["baseline_features"], got["input_embeddings"]
        if feature_model:
            raw[task] = embed_texts([f.example.text for f in feats[:max_per_task]], feature_model)
    if not model.routed:  # no router: the representation sections only
        return write_representation_report(out, features, labels, base or None, inputs or None,
                                           raw_features=raw or None, feature_model=feature_model or "")
    return write_report(
        out, traces, features=features, feature_labels=labels,
        baseline_features=base or None, input_embeddings=inputs or None,
        label_names={t: list(prepared.specs[t].verbalizer) for t in features} if by_label else None,
        raw_features=raw or None, feature_model=feature_model or "",
    )
