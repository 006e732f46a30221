"""Routing of one task, read per layer and per class.

With one task there is nothing to compare pathways against, so the useful
questions are within the task: how is each layer's traffic spread over the
experts, and do examples of different classes take different pathways
(``mept analyze --by label``)? Numpy in, plain Python out, like
:mod:`mept.core.pathways`.
"""
from __future__ import annotations

import numpy as np

from mept.core.pathways import RoutingTrace, compute_pathway


def pathways_by_label(trace: RoutingTrace, label_names: list[str] | None = None) -> dict[str, dict]:
    """``{class name: pathway dict + "examples"}`` over the examples of each gold label.

    Labels outside ``label_names`` (or all labels, without names) are keyed by their id.
    """
    if trace.labels is None:
        return {}
    out: dict[str, dict] = {}
    for label in sorted(set(trace.labels.tolist())):
        keep = trace.labels == label
        sub = RoutingTrace(trace.task, trace.layers, trace.probs[keep], trace.chosen[keep])
        name = label_names[label] if label_names and 0 <= label < len(label_names) else str(label)
        out[name] = {**compute_pathway(sub).to_dict(), "examples": int(keep.sum())}
    return out


def format_layer_use(task: str, pathway: dict) -> str:
    """Per prompted layer, the share of examples routed to each expert (top-1), in percent."""
    freq = np.asarray(pathway["top1_freq"])  # (L, E)
    head = "layer " + "".join(f"{'e' + str(e):>6}" for e in range(freq.shape[1]))
    rows = [f"{layer + 1:>5} " + "".join(f"{100 * x:6.0f}" for x in row) for layer, row in zip(pathway["layers"], freq)]
    return "\n".join([f"{task}: expert use per layer (% of examples, top-1)", head, *rows])


def format_by_label(task: str, by_label: dict[str, dict]) -> str:
    """Each class's pathway, and the layers where classes' most used experts differ."""
    if not by_label:
        return f"{task}: no gold labels, no routing by class"
    width = max(len(name) for name in by_label)
    lines = [f"{task}: pathway by class (most used expert per layer, and its share)"]
    for name, p in by_label.items():
        freq = np.asarray(p["top1_freq"])  # (L, E)
        steps = " ".join(f"{e}({100 * freq[i, e]:.0f}%)" for i, e in enumerate(p["pathway"]))
        lines.append(f"  {name:<{width}}  n={p['examples']:<4} {steps}")
    paths = np.array([p["pathway"] for p in by_label.values()])  # (C, L)
    layers = by_label[next(iter(by_label))]["layers"]
    differ = [str(layers[i] + 1) for i in range(paths.shape[1]) if len(set(paths[:, i].tolist())) > 1]
    lines.append(f"  classes differ at layer(s): {', '.join(differ)}" if differ else "  all classes share one pathway")
    return "\n".join(lines)
