"""A real training run on real data learns: MEPT beats the majority class on held-out validation."""

from __future__ import annotations

import pytest

from mept.data.bigbench import tarball_path
from mept.train import run
from mept.train_config import TrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not tarball_path().exists(), reason="BIG-bench tarball not downloaded")]


def test_mept_mixture_training_on_the_offline_suite_beats_the_majority_class(tmp_path):
    cfg = TrainConfig(
        method="mept", model="minilm", tasks=["bb-cb", "bb-wsc", "bb-rte", "bb-boolq"],
        max_steps=600, batch_size=16, max_length=128, max_eval_examples=150, eval_every=150,
        method_args={"num_experts": 4}, output=str(tmp_path / "run"), progress=False,
    )
    m = run(cfg)
    margins = {t: m["tasks"][t]["score"] - m["majority"][t] for t in m["tasks"]}
    clear = [t for t, gain in margins.items() if gain >= 5.0]
    assert len(clear) >= 2, f"margins over the majority class: {margins}"
    assert m["average"] > sum(m["majority"].values()) / len(m["majority"]) + 3
