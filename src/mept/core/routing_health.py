"""Routing health: is the router really routing, measured on held-out data after training.

A router can work at initialisation and degenerate in training: every input sent to one
expert per layer, so a mixture of experts becomes one deep prompt with a gate. These numbers
say whether that happened, per prompted layer over all evaluation examples:

- ``share``: the fraction of examples whose top-1 choice is each expert (the load);
- ``entropy``: the normalised entropy of that share, H / log E (0 = one expert, 1 = uniform);
- ``experts_in_use``: experts that take at least 2% of the examples;
- ``mean_top1_prob``: how decisive the router is (1.0 = hard, saturated logits);
- ``collapsed``: one expert takes >= 90% of the examples (never with a single expert: no choice to lose).

and per task its pathway, with the largest pathway cosine between two distinct tasks (1.0
means two tasks take identical routes). Everything is plain numpy and JSON, so the trainer
(``metrics.json``), the CLI summary and ``mept analyze`` share one definition, and importing it
(with :mod:`mept.harness.evaluate`) loads neither matplotlib nor scikit-learn.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from mept.core.pathways import RoutingTrace, compute_pathway, cosine, pathway_vector

IN_USE = 0.02  # an expert "in use" takes at least this share of the examples
COLLAPSED = 0.90  # one expert taking this share of a layer's examples is a collapse


def routing_health(traces: list[RoutingTrace]) -> dict[str, Any]:
    """The ``routing`` block of ``metrics.json`` from per-task traces of one model."""
    if not traces:
        return {}
    layers = traces[0].layers
    E = traces[0].num_experts
    chosen = np.concatenate([t.chosen for t in traces])  # (N, L)
    probs = np.concatenate([t.probs for t in traces])  # (N, L, E)
    rows = []
    for j, layer in enumerate(layers):
        share = np.bincount(chosen[:, j], minlength=E) / len(chosen)  # (E,)
        nz = share[share > 0]
        # + 0.0 turns the -0.0 of a collapsed layer (-(1 * log 1)) into 0.0, so it never prints "-0.00"
        entropy = float(-(nz * np.log(nz)).sum() / math.log(E)) + 0.0 if E > 1 else 0.0
        rows.append({
            "layer": layer + 1,  # 1-based, as layers are named everywhere a user sees them
            "share": [round(float(x), 4) for x in share],
            "entropy": round(entropy, 4),
            "experts_in_use": int((share >= IN_USE).sum()),
            "mean_top1_prob": round(float(probs[:, j].max(-1).mean()), 4),
            # one expert (num_experts=1, an ablation) leaves the router nothing to choose: not a collapse
            "collapsed": E > 1 and bool(share.max() >= COLLAPSED),
        })
    pathways = {t.task: compute_pathway(t) for t in traces}
    pairs = {
        f"{a}|{b}": round(cosine(pathway_vector(pathways[a]), pathway_vector(pathways[b])), 4)
        for a, b in itertools.combinations(pathways, 2)
    }
    return {
        "experts": E,
        "examples": int(len(chosen)),
        "layers": rows,
        "collapsed_layers": [r["layer"] for r in rows if r["collapsed"]],
        "layers_with_3_experts": sum(r["experts_in_use"] >= 3 for r in rows),
        "mean_entropy": round(float(np.mean([r["entropy"] for r in rows])), 4),
        "pathways": {task: [int(x) for x in p.pathway] for task, p in pathways.items()},
        "pathway_cosine": pairs,
        "max_pathway_cosine": max(pairs.values()) if pairs else None,
    }


def format_health(health: dict[str, Any], examples: str = "validation examples") -> str:
    """Compact text: one line per prompted layer, then any collapse warning.

    ``examples`` names what was routed ("test examples", "examples of new.csv"): a test file
    scored by ``mept eval --file`` is not validation data, and the summary must not say so.
    """
    if not health:
        return ""
    if health["experts"] == 1:
        return f"routing: 1 expert per layer, nothing to route ({health['examples']} {examples})"
    lines = [f"routing ({health['experts']} experts, {health['examples']} {examples}; "
             "layer: experts in use, entropy, top-1 prob, largest share):"]
    for r in health["layers"]:
        lines.append(f"  layer {r['layer']:>2}: {r['experts_in_use']:>2} in use  entropy {max(0.0, r['entropy']):.2f}  "
                     f"top-1 p {r['mean_top1_prob']:.2f}  max share {max(r['share']):.2f}"
                     + ("  COLLAPSED" if r["collapsed"] else ""))
    if health.get("max_pathway_cosine") is not None:
        lines.append(f"  task pathways: max cosine between two tasks {health['max_pathway_cosine']:.3f}")
    warning = health_warning(health)
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def health_warning(health: dict[str, Any]) -> str | None:
    collapsed = health.get("collapsed_layers") or []
    if not collapsed:
        return None
    return (f"warning: routing collapsed in {len(collapsed)} of {len(health['layers'])} prompted layers "
            f"({', '.join(map(str, collapsed))}): one expert takes >= {COLLAPSED:.0%} of the examples; "
            "see README 'Routing' for the switches that spread the load")
