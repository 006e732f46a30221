"""Routing analysis: expert pathways, task similarity, t-SNE maps, report files.

Pure numpy in, JSON/PNG out; the model and ``mept analyze`` produce
:class:`~mept.core.pathways.RoutingTrace` objects (:mod:`mept.core.pathways`, light enough for evaluation) and
call :func:`write_report`.
"""
from mept.analysis.manifold import subsample_per_task, tsne_embed
from mept.analysis.plots import plot_expert_utilization, plot_pathway_heatmap, plot_tsne
from mept.analysis.report import write_report
from mept.analysis.similarity import format_table, pairwise_similarity, task_similarity

__all__ = [
    "format_table",
    "pairwise_similarity",
    "plot_expert_utilization",
    "plot_pathway_heatmap",
    "plot_tsne",
    "subsample_per_task",
    "task_similarity",
    "tsne_embed",
    "write_report",
]
