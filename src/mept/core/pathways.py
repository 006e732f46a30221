"""Neural activation pathways: which expert prompt each layer uses, per task.

The MEPT paper's Fig. 6 shows, per task and prompted layer, the experts'
probabilities as a heat map ("expert weights", Appendix H; each row sums to 1);
we draw the mean routing probability over a task's examples (our reading). We
also summarise routing as a *pathway* (as in its Fig. 4b, the expert with the
highest probability at every layer; ours: the one the router picks most often)
and keep the full per-layer distributions beside it (mean routing probability
and top-1 frequency) because a pathway alone hides how decisive the router is: a layer
where expert 2 wins 51% of the time looks the same as one where it wins 100%.

Everything here is numpy in, numpy/plain-Python out, so the model, the CLI and
the tests can all feed it without torch; and nothing here loads plotting or t-SNE libraries, so
evaluation (:mod:`mept.core.routing_health`) uses it as cheaply as :mod:`mept.analysis` does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mept.errors import MeptError


@dataclass
class RoutingTrace:
    """Routing of one task's evaluation examples."""

    task: str
    layers: list[int]  # prompted layer ids (0-based), length L
    probs: np.ndarray  # (N, L, E) routing probabilities, rows sum to 1
    chosen: np.ndarray  # (N, L) int, top-1 expert per example per layer
    labels: np.ndarray | None = None  # (N,) gold labels, optional

    def __post_init__(self) -> None:
        # Validate here so a shape mistake in the model wiring fails with a
        # message naming the field, not as a broadcasting error in a plot.
        self.layers = [int(x) for x in self.layers]
        self.probs = np.asarray(self.probs, dtype=np.float64)
        self.chosen = np.asarray(self.chosen)
        if self.probs.ndim != 3:
            raise MeptError(
                f"RoutingTrace({self.task!r}).probs must be (N, L, E), got shape {self.probs.shape}"
            )
        n, n_layers, n_experts = self.probs.shape
        if n == 0:
            raise MeptError(f"RoutingTrace({self.task!r}) has no examples")
        if n_layers != len(self.layers):
            raise MeptError(
                f"RoutingTrace({self.task!r}).layers has {len(self.layers)} ids "
                f"but probs has {n_layers} layers"
            )
        if self.chosen.shape != (n, n_layers):
            raise MeptError(
                f"RoutingTrace({self.task!r}).chosen must be (N, L) = {(n, n_layers)}, "
                f"got {self.chosen.shape}"
            )
        if not np.issubdtype(self.chosen.dtype, np.integer):
            raise MeptError(f"RoutingTrace({self.task!r}).chosen must hold integer expert ids")
        if self.chosen.min() < 0 or self.chosen.max() >= n_experts:
            raise MeptError(
                f"RoutingTrace({self.task!r}).chosen has ids outside [0, {n_experts})"
            )
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.shape != (n,):
                raise MeptError(
                    f"RoutingTrace({self.task!r}).labels must be (N,) = ({n},), "
                    f"got {self.labels.shape}"
                )

    @property
    def num_experts(self) -> int:
        return int(self.probs.shape[2])


@dataclass
class Pathway:
    """Per-layer routing summary of one task (paper Fig. 6)."""

    task: str
    layers: list[int]
    mean_probs: np.ndarray  # (L, E) mean routing probability, rows sum to 1
    top1_freq: np.ndarray  # (L, E) share of examples routed to each expert, rows sum to 1
    pathway: np.ndarray  # (L,) most chosen expert per layer = argmax(top1_freq)

    def to_dict(self) -> dict:
        """JSON-ready form (lists, not arrays); the schema of ``pathways.json``."""
        return {
            "layers": list(self.layers),
            "mean_probs": self.mean_probs.tolist(),
            "top1_freq": self.top1_freq.tolist(),
            "pathway": [int(x) for x in self.pathway],
        }


def compute_pathway(trace: RoutingTrace) -> Pathway:
    """Summarise one trace into mean probabilities, top-1 frequencies and the pathway.

    Ties in ``argmax`` go to the lowest expert id, matching ``torch.argmax``,
    so a router whose output is all-uniform yields pathway ``[0, 0, ...]``.
    """
    probs = trace.probs  # (N, L, E)
    mean_probs = probs.mean(axis=0)  # (L, E)
    # Renormalise: stored probabilities may be float16/bfloat16-rounded.
    mean_probs = mean_probs / np.clip(mean_probs.sum(axis=1, keepdims=True), 1e-12, None)
    n, n_layers, n_experts = probs.shape
    counts = np.zeros((n_layers, n_experts), dtype=np.float64)  # (L, E)
    for layer in range(n_layers):
        counts[layer] = np.bincount(trace.chosen[:, layer], minlength=n_experts)
    top1_freq = counts / n
    return Pathway(
        task=trace.task,
        layers=list(trace.layers),
        mean_probs=mean_probs,
        top1_freq=top1_freq,
        pathway=top1_freq.argmax(axis=1),
    )


def pathways_json(traces: list[RoutingTrace]) -> dict:
    """``{task: Pathway.to_dict()}`` for every trace, in the order given."""
    return {t.task: compute_pathway(t).to_dict() for t in traces}


def pathway_vector(p: Pathway | dict) -> np.ndarray:
    """Flattened top-1 frequencies, (L*E,): the vector compared across tasks (Fig. 4b).

    Accepts a :class:`Pathway` or its ``to_dict()`` form, so similarity can be
    recomputed from a saved ``pathways.json``.
    """
    freq = p["top1_freq"] if isinstance(p, dict) else p.top1_freq
    return np.asarray(freq, dtype=np.float64).reshape(-1)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; 0.0 when either vector is all zeros (no direction)."""
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else 0.0
