"""The offline backbones that ship as PyPI packages: MPNet (12 x 768, T5-Base encoder size)."""

from __future__ import annotations

import pytest
import torch

import mept
from mept.errors import MeptError
from mept.files.paths import cache_dir
from mept.model.backbones import load_backbone, mpnet_wheel_dir, resolve

pytestmark = pytest.mark.skipif(
    not (cache_dir() / "models" / "all-mpnet-base-v2" / "config.json").exists() and not mpnet_wheel_dir().exists(),
    reason="mpnet not set up (scripts/setup.sh)",
)


@pytest.fixture(scope="module")
def mpnet():
    return load_backbone("mpnet", "cls", num_labels=3)


def test_mpnet_is_the_12_layer_768_wide_encoder_and_mept_wraps_it(mpnet):
    cfg = mpnet.model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size) == ("mpnet", 12, 768)
    model = mept.get_model(mpnet.model, mept.MEPTConfig(num_experts=10, prompt_length=10))
    try:
        report = model.parameter_report()
        assert report["prompted_layers"] == 12 and report["backbone"] > 100_000_000
        assert report["head"] == 3 * 768 + 3  # the default linear head: MPNet's dense + tanh layer dropped
        assert report["trainable_percent"] == pytest.approx(1.02, abs=0.01)
        assert model.head_pooling == "mean"  # MPNet's head reads the first token: it gets the masked mean there
        batch = mpnet.processor(["a great film", "a dull, slow and overlong film"], padding=True, return_tensors="pt")
        model.train()
        out = model(**batch, labels=torch.tensor([1, 0]))
        out.loss.backward()
        assert out.logits.shape == (2, 3)
        assert all(p.grad is not None for r in model.method.routers() for p in r.parameters())
        # The pretrained encoder really is pretrained: paraphrases are closer than unrelated text.
        model.eval()
        enc = model.backbone.base_model
        with torch.no_grad():
            texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."]
            b = mpnet.processor(texts, padding=True, return_tensors="pt")
            h = enc(**b).last_hidden_state
            m = b["attention_mask"][..., None]
            e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
        assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    finally:
        model.unload()


def test_missing_mpnet_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MEPT_CACHE", str(tmp_path))
    with pytest.raises(MeptError, match="offline model 'mpnet' is not set up.*scripts/setup.sh"):
        resolve("mpnet")
