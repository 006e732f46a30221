"""A real training run on real data learns, and its router still routes afterwards.

MEPT with its default settings, mixture-trained on the default ``vader`` suite (human-rated
sentiment of movie reviews, tweets, product reviews and editorials), must beat the majority class
clearly on held-out validation and test, and the trained router must not have collapsed: no
prompted layer sends >= 90% of the examples to one expert, and no two tasks take identical pathways.
"""

from __future__ import annotations

import itertools

import pytest
from conftest import needs_vader

from mept.harness.train import run
from mept.harness.train_config import TrainConfig

pytestmark = [pytest.mark.slow, needs_vader]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = TrainConfig(
        method="mept", model="minilm", tasks=["vader"], max_steps=300, batch_size=16, max_length=128,
        max_eval_examples=100, eval_every=150, output=str(tmp_path_factory.mktemp("learn") / "run"), progress=False,
    )
    return run(cfg)


def test_mixture_training_beats_the_majority_class_by_ten_points(trained):
    m = trained
    majority = sum(m["majority"].values()) / len(m["majority"])
    assert m["average"] >= majority + 10, f"average {m['average']:.1f} vs majority {majority:.1f}: {m['tasks']}"
    assert m["test"]["average"] >= majority + 10, m["test"]
    assert m["history"][-1]["loss"] < m["history"][0]["loss"] or m["best_step"] == m["history"][0]["step"]


def test_trained_router_does_not_collapse_and_tasks_take_different_pathways(trained):
    health = trained["routing"]
    assert health["collapsed_layers"] == [], health["layers"]
    assert health["layers_with_3_experts"] >= len(health["layers"]) / 2
    cosines = health["pathway_cosine"]
    assert len(cosines) == len(list(itertools.combinations(trained["tasks"], 2)))
    assert max(cosines.values()) < 0.95, cosines
