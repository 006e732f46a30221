"""PNG figures for routing analysis (paper Figs. 5 and 6) and t-SNE maps.

We build ``matplotlib.figure.Figure`` objects directly instead of going through
``pyplot``: no GUI backend is touched (rendering is Agg, PNG only), no global
figure registry leaks memory in long runs, and callers that already use pyplot
are unaffected.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mept.core.pathways import Pathway, RoutingTrace, compute_pathway
from mept.errors import MeptError

DPI = 120
_MAX_LEGEND_ENTRIES = 20  # beyond this a legend covers the plot; colours still differ


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def layer_names(layers: list[int]) -> list[str]:
    """Tick labels of 0-based layer ids, 1-based as the paper, the text summaries and preds files name them."""
    return [str(layer + 1) for layer in layers]


def _as_pathways(items: list[Pathway] | list[RoutingTrace]) -> list[Pathway]:
    return [compute_pathway(x) if isinstance(x, RoutingTrace) else x for x in items]


HEATMAP_VALUES = {"top1_freq": "top-1 frequency", "mean_probs": "mean expert probability"}


def plot_pathway_heatmap(pathways: list[Pathway] | list[RoutingTrace], path: str | Path,
                         value: str = "top1_freq") -> Path:
    """One panel per task: layers (rows) x experts (columns), ``value`` per cell.

    ``value="mean_probs"`` is the paper's Fig. 6 (mean expert probability); ``"top1_freq"``
    (the share of examples routed to each expert) is ours beside it: a router can put most
    examples on one expert at a probability barely above the others', which only the two
    together show. Colour runs 0..1 on a sequential map; the pathway's (most chosen) expert
    of each layer is annotated with its value, so the pathway reads as a path down the panel.
    """
    if value not in HEATMAP_VALUES:
        raise MeptError(f"plot_pathway_heatmap: value must be one of {', '.join(HEATMAP_VALUES)}, got {value!r}")
    pws = _as_pathways(pathways)
    if not pws:
        raise MeptError("plot_pathway_heatmap needs at least one pathway")
    n_layers = max(len(p.layers) for p in pws)
    n_experts = max(p.top1_freq.shape[1] for p in pws)
    ncols = min(len(pws), 4)
    nrows = math.ceil(len(pws) / ncols)
    panel_w = max(2.6, 0.5 * n_experts + 1.2)
    panel_h = max(3.0, 0.3 * n_layers + 1.0)
    fig = Figure(
        figsize=(max(6.0, panel_w * ncols + 1.0), max(4.0, panel_h * nrows)),
        layout="constrained",
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax, p in zip(axes.flat, pws):
        freq = getattr(p, value)  # (L, E)
        image = ax.imshow(freq, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        for row, expert in enumerate(p.pathway):
            cell = freq[row, expert]
            ax.text(
                expert, row, f"{cell:.2f}", ha="center", va="center", fontsize=7,
                color="white" if cell > 0.5 else "black",
            )
        ax.set_title(p.task, fontsize=10)
        ax.set_xticks(range(freq.shape[1]))
        ax.set_xlabel("expert")
        ax.set_yticks(range(len(p.layers)))
        ax.set_yticklabels(layer_names(p.layers), fontsize=7)
        ax.set_ylabel("layer")
    for ax in list(axes.flat)[len(pws):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, label=HEATMAP_VALUES[value], shrink=0.8)
    fig.suptitle("Expert pathways (share of examples routed to each expert)" if value == "top1_freq"
                 else "Mean expert probability per layer (paper Fig. 6)")
    return _save(fig, path)


def plot_expert_utilization(items: list[Pathway] | list[RoutingTrace], path: str | Path) -> Path:
    """Per-layer stacked bars of top-1 expert frequency, all tasks pooled (Fig. 5).

    Traces are pooled by example (a big task weighs more); pathways, which
    carry no example counts, are averaged with equal weight per task.
    """
    if not items:
        raise MeptError("plot_expert_utilization needs at least one trace or pathway")
    pws = _as_pathways(items)
    layers = pws[0].layers
    if any(p.layers != layers or p.top1_freq.shape != pws[0].top1_freq.shape for p in pws):
        raise MeptError("plot_expert_utilization: all tasks must share the same layers and experts")
    if all(isinstance(x, RoutingTrace) for x in items):
        weights = np.array([x.probs.shape[0] for x in items], dtype=np.float64)
    else:
        weights = np.ones(len(pws))
    stacked = np.stack([p.top1_freq for p in pws])  # (T, L, E)
    pooled = np.tensordot(weights / weights.sum(), stacked, axes=1)  # (L, E)
    n_layers, n_experts = pooled.shape

    fig = Figure(figsize=(max(6.0, 0.35 * n_layers + 2.5), 4.5), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab20" if n_experts > 10 else "tab10"]
    x = np.arange(n_layers)
    bottom = np.zeros(n_layers)
    for e in range(n_experts):
        ax.bar(x, pooled[:, e], bottom=bottom, color=cmap(e % cmap.N), label=f"expert {e}", width=0.8)
        bottom += pooled[:, e]
    ax.set_xticks(x)
    ax.set_xticklabels(layer_names(layers), fontsize=7)
    ax.set_xlabel("prompted layer")
    ax.set_ylabel("share of examples (top-1)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Expert utilisation, {len(pws)} task(s) pooled")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, path)


def _scatter_by(ax, points: np.ndarray, groups: np.ndarray, title: str, sort: bool = False) -> None:
    """Scatter coloured by category, one legend entry per category.

    Tasks keep the caller's order; labels are sorted so "0" precedes "1".
    """
    names = list(dict.fromkeys(groups.tolist()))
    if sort:
        names = sorted(names, key=str)
    cmap = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
    for i, name in enumerate(names):
        mask = groups == name
        ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.75, color=cmap(i % cmap.N), label=str(name))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= _MAX_LEGEND_ENTRIES:
        ax.legend(fontsize=7, markerscale=1.5, loc="best")


def plot_tsne(points, tasks, labels, path: str | Path, title: str = "t-SNE") -> Path:
    """Side-by-side 2-D scatter coloured by task (left) and by gold label (right).

    ``labels`` may be ``None`` (e.g. generation tasks), giving the task panel only.
    """
    points = np.asarray(points, dtype=np.float64)
    tasks = np.asarray(tasks)
    if points.ndim != 2 or points.shape[1] != 2 or tasks.shape != (points.shape[0],):
        raise MeptError(f"plot_tsne needs points (N, 2) and tasks (N,), got {points.shape} and {tasks.shape}")
    panels = 1 if labels is None else 2
    fig = Figure(figsize=(5.5 * panels + 0.5, 5.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _scatter_by(axes[0], points, tasks, "coloured by task")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != tasks.shape:
            raise MeptError(f"plot_tsne: labels must be (N,) = {tasks.shape}, got {labels.shape}")
        _scatter_by(axes[1], points, labels, "coloured by label", sort=True)
    fig.suptitle(title)
    return _save(fig, path)
