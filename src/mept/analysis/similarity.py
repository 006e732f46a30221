"""How alike two tasks are: by routing pathway and by input text.

After the paper's Fig. 4: tasks compared by the mean absolute error (MAE) and
cosine similarity of their routing vectors (our reading of Fig. 4b), and by the
cosine of the mean embedding of their inputs (Fig. 4a uses BERT features of the
raw data; which model embeds the inputs here is ``--feature-model``'s choice). If routing tracks task content, the two
similarity orders should agree; putting both here lets one report show that.
"""
from __future__ import annotations

import numpy as np

from mept.core.pathways import cosine
from mept.errors import MeptError


def pairwise_similarity(vectors: dict[str, np.ndarray]) -> dict:
    """MAE and cosine for every ordered pair of tasks' pathway vectors.

    Returns a JSON-ready dict::

        {"tasks": [t0, t1, ...],
         "mae": [[...]],     # (T, T), mae[i][j] = mean |v_i - v_j|
         "cosine": [[...]],  # (T, T)
         "pairs": [{"a": t0, "b": t1, "mae": ..., "cosine": ...}, ...]}

    ``pairs`` lists all ordered pairs ``a != b`` so a reader can grep one pair
    without indexing the matrices.
    """
    tasks = list(vectors)
    vecs = [np.asarray(vectors[t], dtype=np.float64).reshape(-1) for t in tasks]
    sizes = {v.size for v in vecs}
    if len(sizes) > 1:
        raise MeptError(
            "pathway vectors differ in length across tasks "
            f"({dict(zip(tasks, (v.size for v in vecs)))}); compare runs with the same layers and experts"
        )
    n = len(tasks)
    mae = np.zeros((n, n))
    cos = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            mae[i, j] = float(np.abs(vecs[i] - vecs[j]).mean()) if vecs[i].size else 0.0
            cos[i, j] = cosine(vecs[i], vecs[j])
    pairs = [
        {"a": tasks[i], "b": tasks[j], "mae": mae[i, j], "cosine": cos[i, j]}
        for i in range(n)
        for j in range(n)
        if i != j
    ]
    return {"tasks": tasks, "mae": mae.tolist(), "cosine": cos.tolist(), "pairs": pairs}


def _matrix_table(title: str, tasks: list[str], matrix: list[list[float]]) -> str:
    """One aligned text matrix with row and column headers."""
    width = max([len(t) for t in tasks] + [6])
    header = " " * width + " " + " ".join(t.rjust(width) for t in tasks)
    rows = [
        t.ljust(width) + " " + " ".join(f"{x:.3f}".rjust(width) for x in row)
        for t, row in zip(tasks, matrix)
    ]
    return "\n".join([title, header, *rows])


def format_table(sim: dict) -> str:
    """The MAE and cosine matrices of :func:`pairwise_similarity` as text tables."""
    return (
        _matrix_table("Pathway MAE (lower = more similar)", sim["tasks"], sim["mae"])
        + "\n\n"
        + _matrix_table("Pathway cosine (higher = more similar)", sim["tasks"], sim["cosine"])
    )


def task_similarity(embeddings: dict[str, np.ndarray]) -> np.ndarray:
    """(T, T) cosine of each task's mean input embedding, in dict order.

    After the paper's BERT-feature comparison (Fig. 4a): embed every input, average
    per task, then take normalised dot products of the averages.
    """
    means = []
    for task, emb in embeddings.items():
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise MeptError(f"input embeddings for {task!r} must be (N, d) with N > 0, got {emb.shape}")
        means.append(emb.mean(axis=0))  # (d,)
    n = len(means)
    return np.array([[cosine(means[i], means[j]) for j in range(n)] for i in range(n)])
