"""One call that turns routing traces (and optional features) into a report folder.

``mept analyze`` collects traces from the model and hands them here; this
module decides file names and which figures exist, so the CLI stays a thin
shell and tests can check a whole report without a model.

Files written to ``out_dir``:

- ``pathways.json``             per task: layers, mean_probs, top1_freq, pathway
                                (and ``by_label``: the same per gold class, with ``label_names``)
- ``pathway_heatmap_probs.png`` Fig. 6 as the paper shows it: mean expert probability per task
- ``pathway_heatmap.png``       the same layout in top-1 frequency (ours, beside it)
- ``expert_utilization.png``    Fig. 5, all tasks pooled
- ``pathway_similarity.json``   Fig. 4b, MAE and cosine between tasks
- ``routing_health.json``       per-layer load, entropy, experts in use, collapse flags
- ``manifold_tsne.png``         when ``features`` is given
- ``manifold_tsne_backbone.png`` when ``baseline_features`` is given
- ``task_similarity.json``      when ``input_embeddings`` is given
- ``manifold_tsne_raw.png``     Fig. 4a: the raw inputs through a chosen feature model, when
                                ``raw_features`` is given (with ``task_similarity_raw.json``)
- ``analysis.json``             written first: marks the folder as a mept analysis (for the one
                                ownership check, :data:`ANALYSIS`), and at the end lists the files

Everything that can be refused (too few points for a t-SNE) is refused before the first file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mept.analysis.by_label import format_by_label, format_layer_use, pathways_by_label
from mept.analysis.manifold import MIN_TSNE_POINTS, subsample_per_task, tsne_embed
from mept.analysis.plots import plot_expert_utilization, plot_pathway_heatmap, plot_tsne
from mept.analysis.similarity import format_table, pairwise_similarity, task_similarity
from mept.core.pathways import RoutingTrace, compute_pathway, pathway_vector
from mept.core.routing_health import format_health, routing_health
from mept.errors import MeptError
from mept.files.ownership import OutputKind
from mept.files.run_names import ANALYSIS_DIR, RUN_CONFIG
from mept.version import __version__

MAX_TSNE_PER_TASK = 200
MARKER = "analysis.json"
FILES = {name: name + (".json" if name in ("pathways", "pathway_similarity", "routing_health", "task_similarity",
                                            "task_similarity_raw") else ".png")
         for name in ("pathways", "pathway_heatmap_probs", "pathway_heatmap", "expert_utilization", "pathway_similarity",
                      "routing_health", "manifold_tsne", "manifold_tsne_backbone", "task_similarity",
                      "manifold_tsne_raw", "task_similarity_raw")}


def _legacy_analysis(out: Path, names: list[str]) -> bool:
    """An analysis written before the marker existed: the ``analysis`` folder of a run, holding only our files."""
    return out.name == ANALYSIS_DIR and (out.parent / RUN_CONFIG).is_file()


# What `mept analyze --out` holds, for the one ownership check (mept.files.ownership.claim_output)
ANALYSIS = OutputKind("a mept analysis", marker=MARKER, entries=lambda: frozenset(FILES.values()),
                      legacy=_legacy_analysis)


def _write_json(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def _tsne_plot(
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray | None],
    path: Path,
    title: str,
    seed: int,
) -> Path:
    """Pool per-task features, cap each task at 200 points, embed and plot."""
    tasks = list(features)
    feats = [np.asarray(features[t], dtype=np.float64) for t in tasks]
    for t, f in zip(tasks, feats):
        if f.ndim != 2 or f.shape[0] == 0:
            raise MeptError(f"features for {t!r} must be (N, d) with N > 0, got {f.shape}")
    task_ids = np.concatenate([np.full(f.shape[0], t, dtype=object) for t, f in zip(tasks, feats)])
    # A task without labels still appears in the label panel, as "-".
    label_parts = []
    for t, f in zip(tasks, feats):
        lab = labels.get(t)
        if lab is None or len(lab) != f.shape[0]:
            label_parts.append(np.full(f.shape[0], "-", dtype=object))
        else:
            label_parts.append(np.asarray([str(x) for x in lab], dtype=object))
    all_labels = np.concatenate(label_parts)
    keep = subsample_per_task(task_ids, max_per_task=MAX_TSNE_PER_TASK, seed=seed)
    x = np.concatenate(feats)[keep]  # (N', d)
    points = tsne_embed(x, seed=seed)  # (N', 2)
    has_labels = any(lab is not None for lab in labels.values())
    return plot_tsne(points, task_ids[keep], all_labels[keep] if has_labels else None, path, title)


def write_report(
    out_dir: str | Path,
    traces: list[RoutingTrace],
    features: dict[str, np.ndarray] | None = None,
    feature_labels: dict[str, np.ndarray] | None = None,
    baseline_features: dict[str, np.ndarray] | None = None,
    input_embeddings: dict[str, np.ndarray] | None = None,
    seed: int = 42,
    label_names: dict[str, list[str]] | None = None,
    raw_features: dict[str, np.ndarray] | None = None,
    feature_model: str = "",
) -> dict:
    """Write the analysis files for ``traces`` into ``out_dir``.

    ``features`` / ``baseline_features`` are per-task (N, d) final-layer
    mean-pooled hidden states with and without the trained prompts;
    ``feature_labels`` gives their gold labels (falling back to each trace's
    ``labels`` when lengths match). ``input_embeddings`` are per-task (N, d)
    sentence embeddings for the text-based task similarity (after the paper's Fig. 4a).
    ``label_names`` (task -> verbalizer) asks for routing by gold class. ``raw_features`` are
    per-task (N, d) embeddings of the raw inputs by ``feature_model`` (the paper's Fig. 4a uses BERT).

    Returns ``{"files": {name: Path}, "summary": str}`` where ``summary`` is the
    pathway MAE/cosine table, or for a single task its per-layer expert use
    (for the CLI to print), followed by the by-class pathways when asked.
    """
    if not traces:
        raise MeptError("write_report needs at least one routing trace")
    names = [t.task for t in traces]
    if len(set(names)) != len(names):
        raise MeptError(f"duplicate task names in routing traces: {names}")
    check_tsne_inputs(features, baseline_features, raw_features)
    out = begin(out_dir)
    files: dict[str, Path] = {}

    pathways = [compute_pathway(t) for t in traces]
    saved = {p.task: p.to_dict() for p in pathways}
    by_label = {t.task: pathways_by_label(t, label_names.get(t.task)) for t in traces} if label_names else {}
    for task, classes in by_label.items():
        saved[task]["by_label"] = classes
    files["pathways"] = _write_json(out / FILES["pathways"], saved)
    files["pathway_heatmap_probs"] = plot_pathway_heatmap(pathways, out / FILES["pathway_heatmap_probs"], "mean_probs")
    files["pathway_heatmap"] = plot_pathway_heatmap(pathways, out / FILES["pathway_heatmap"])
    files["expert_utilization"] = plot_expert_utilization(traces, out / FILES["expert_utilization"])

    sim = pairwise_similarity({p.task: pathway_vector(p) for p in pathways})
    files["pathway_similarity"] = _write_json(out / FILES["pathway_similarity"], sim)
    health = routing_health(traces)
    files["routing_health"] = _write_json(out / FILES["routing_health"], health)
    summary = format_table(sim) if len(traces) > 1 else format_layer_use(traces[0].task, saved[traces[0].task])
    summary = format_health(health) + "\n\n" + summary
    if by_label:
        summary += "\n" + "\n".join(format_by_label(task, classes) for task, classes in by_label.items())

    labels = {t.task: t.labels for t in traces}
    if feature_labels:
        labels.update(feature_labels)
    files.update(_write_representations(out, features, labels, baseline_features, input_embeddings, seed,
                                        raw_features, feature_model))
    return {"files": end(out, files), "summary": summary}
def write_representation_report(
    out_dir: str | Path,
    features: dict[str, np.ndarray],
    feature_labels: dict[str, np.ndarray],
    baseline_features: dict[str, np.ndarray] | None = None,
    input_embeddings: dict[str, np.ndarray] | None = None,
    seed: int = 42,
    raw_features: dict[str, np.ndarray] | None = None,
    feature_model: str = "",
) -> dict:
    """The report of a method without routing (prompt tuning, LoRA, probe...): the representation
    plots and task similarity of :func:`write_report`, with the routing sections simply absent."""
    check_tsne_inputs(features, baseline_features, raw_features)
    out = begin(out_dir)
    files = _write_representations(out, features, dict(feature_labels), baseline_features, input_embeddings, seed,
                                   raw_features, feature_model)
    return {"files": end(out, files),
            "summary": "no routing to report (the method has no router); wrote the representations"}


def check_tsne_inputs(*feature_sets: dict[str, np.ndarray] | None) -> None:
    """Refuse, before any file is written, a t-SNE that cannot be drawn (fewer than 3 points in all)."""
    for features in feature_sets:
        if not features:
            continue
        n = sum(min(len(f), MAX_TSNE_PER_TASK) for f in features.values())
        if n < MIN_TSNE_POINTS:
            raise MeptError(f"a t-SNE needs at least {MIN_TSNE_POINTS} examples, but the analysed split gives {n} "
                            f"over {len(features)} task(s); raise --max-per-task or analyse a larger split")


def begin(out_dir: str | Path) -> Path:
    """Create the folder and its marker first, so even an interrupted analysis is known as mept's."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / MARKER, {"mept_version": __version__, "complete": False, "files": []})
    return out


def end(out: Path, files: dict[str, Path]) -> dict[str, Path]:
    _write_json(out / MARKER, {"mept_version": __version__, "complete": True,
                               "files": sorted(p.name for p in files.values())})
    return files


def _write_representations(out: Path, features, labels, baseline_features, input_embeddings, seed: int,
                           raw_features=None, feature_model: str = "") -> dict:
    files: dict[str, Path] = {}
    if features:
        files["manifold_tsne"] = _tsne_plot(
            features, labels, out / FILES["manifold_tsne"], "Final-layer hidden states, with prompts", seed
        )
    if baseline_features:
        files["manifold_tsne_backbone"] = _tsne_plot(
            baseline_features, labels, out / FILES["manifold_tsne_backbone"],
            "Final-layer hidden states, frozen backbone", seed,
        )
    if input_embeddings:
        matrix = task_similarity(input_embeddings)
        files["task_similarity"] = _write_json(
            out / FILES["task_similarity"],
            {"tasks": list(input_embeddings), "cosine": matrix.tolist()},
        )
    if raw_features:
        files["manifold_tsne_raw"] = _tsne_plot(
            raw_features, labels, out / FILES["manifold_tsne_raw"], f"Raw inputs, {feature_model or 'feature model'} features", seed
        )
        files["task_similarity_raw"] = _write_json(
            out / FILES["task_similarity_raw"],
            {"tasks": list(raw_features), "feature_model": feature_model,
             "cosine": task_similarity(raw_features).tolist()},
        )
    return files
