"""2-D t-SNE maps of hidden states, for "do tasks separate?" pictures.

t-SNE is O(N^2), so we cap examples per task before embedding; and it fails
when perplexity >= N, so small evaluation sets get a clipped perplexity
instead of an error.
"""
from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE

from mept.errors import MeptError


def subsample_per_task(task_ids, max_per_task: int = 200, seed: int = 42) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_task`` examples of each task.

    Sampling is without replacement and seeded, so reruns plot the same points.
    """
    task_ids = np.asarray(task_ids)
    rng = np.random.default_rng(seed)
    keep = []
    for task in dict.fromkeys(task_ids.tolist()):  # first-seen order, deterministic
        idx = np.flatnonzero(task_ids == task)
        if idx.size > max_per_task:
            idx = rng.choice(idx, size=max_per_task, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


MIN_TSNE_POINTS = 3


def tsne_embed(features: np.ndarray, seed: int = 42, perplexity: float = 30.0) -> np.ndarray:
    """(N, d) -> (N, 2) with scikit-learn TSNE; deterministic for a given seed."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise MeptError(f"t-SNE features must be (N, d), got shape {x.shape}")
    n = x.shape[0]
    if n < MIN_TSNE_POINTS:
        raise MeptError(f"t-SNE needs at least {MIN_TSNE_POINTS} points, got {n}")
    # sklearn requires perplexity < n_samples; clip for small evaluation sets.
    perplexity = float(min(perplexity, max(1.0, n - 2)))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        random_state=seed,
    )
    return tsne.fit_transform(x)  # (N, 2)
