"""Interop users expect: training in ``transformers.Trainer`` with adapter-only checkpoints, loading by hub id."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import TrainingArguments

import mept
from mept.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME
from mept.errors import MeptError
from mept.harness.trainer import PromptTrainer
from tests.conftest import tiny_bert


class ToyData(torch.utils.data.Dataset):
    """Label 1 iff the sequence contains token 7: learnable in a few steps."""

    def __init__(self, n: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(10, 100, (n, 12), generator=g)
        self.labels = torch.arange(n) % 2
        self.ids[self.labels == 1, 3] = 7

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


def backbone():
    """The same random tiny BERT every call: a checkpoint must meet the backbone it was trained on."""
    torch.manual_seed(0)
    return tiny_bert()


def _args(out, **kw) -> TrainingArguments:
    base = {"output_dir": str(out), "per_device_train_batch_size": 8, "learning_rate": 5e-2, "max_steps": 6,
            "save_steps": 3, "logging_steps": 3, "report_to": [], "use_cpu": True, "seed": 0,
            "save_strategy": "steps", "disable_tqdm": True}
    return TrainingArguments(**{**base, **kw})


def test_trainer_trains_the_prompts_and_checkpoints_hold_only_the_adapter(tmp_path):
    model = mept.get_model(backbone(), mept.MEPTConfig(num_experts=2, prompt_length=4))
    before = {k: v.clone() for k, v in model.adapter_state_dict().items()}
    frozen = {k: v.clone() for k, v in model.backbone.bert.state_dict().items()}
    trainer = PromptTrainer(model=model, args=_args(tmp_path / "out"), train_dataset=ToyData())
    trainer.train()
    after = model.adapter_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("method."))  # prompts/routers moved
    assert all(torch.equal(frozen[k], v) for k, v in model.backbone.bert.state_dict().items())  # backbone did not
    ckpt = tmp_path / "out" / "checkpoint-6"
    files = set(os.listdir(ckpt))
    assert {WEIGHTS_NAME, CONFIG_NAME} <= files and "model.safetensors" not in files
    adapter_bytes = (ckpt / WEIGHTS_NAME).stat().st_size
    backbone_bytes = sum(v.numel() * v.element_size() for v in frozen.values())
    assert adapter_bytes < backbone_bytes / 2
    # the checkpoint is an ordinary mept adapter: it loads onto a fresh backbone and gives the same outputs
    reloaded = mept.load(backbone(), ckpt)
    batch = ToyData()[0]
    ids, mask = batch["input_ids"][None], batch["attention_mask"][None]
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits,
                              reloaded(input_ids=ids, attention_mask=mask).logits, atol=1e-6)


def test_trainer_resumes_from_an_adapter_checkpoint(tmp_path):
    def run(out, **kw):
        torch.manual_seed(0)  # the same random backbone and prompts for every run
        model = mept.get_model(tiny_bert(), mept.MEPTConfig(num_experts=2, prompt_length=4))
        trainer = PromptTrainer(model=model, args=_args(out, **kw), train_dataset=ToyData())
        return model, trainer

    full, trainer = run(tmp_path / "full")
    trainer.train()
    _, first = run(tmp_path / "part", max_steps=6)
    first.train()
    os.rename(tmp_path / "part" / "checkpoint-6", tmp_path / "part" / "unused")  # resume from step 3
    resumed, second = run(tmp_path / "part")
    second.train(resume_from_checkpoint=str(tmp_path / "part" / "checkpoint-3"))
    a, b = full.adapter_state_dict(), resumed.adapter_state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_prompt_trainer_refuses_a_bare_backbone(tmp_path):
    with pytest.raises(MeptError, match="wrap the backbone with mept.get_model"):
        PromptTrainer(model=tiny_bert(), args=_args(tmp_path), train_dataset=ToyData())


def test_load_takes_a_hub_id_and_downloads_only_the_adapter(tmp_path, monkeypatch):
    import huggingface_hub

    model = mept.get_model(tiny_bert(), mept.MEPTConfig(num_experts=2, prompt_length=4))
    model.save_pretrained(tmp_path / "snapshot")  # stands in for the hub's cache folder (offline)
    calls = []

    def fake_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    loaded = mept.load(tiny_bert(), "someone/my-prompts", revision="v1")
    assert calls == [("someone/my-prompts", "v1", sorted([CONFIG_NAME, WEIGHTS_NAME]))]
    a, b = model.adapter_state_dict(), loaded.adapter_state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a real folder, or a missing path that is no repo id, never goes to the hub
    mept.load(backbone(), str(tmp_path / "snapshot"))
    with pytest.raises(MeptError, match="not a mept checkpoint"):
        mept.load(backbone(), str(tmp_path / "missing"))
    with pytest.raises(MeptError, match="not a mept checkpoint"):
        mept.load(backbone(), "my-prompts")
    assert len(calls) == 1


def test_load_of_an_unreachable_hub_id_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub

    def offline(*a, **k):
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(MeptError, match=r"no/such-prompts is neither a folder nor a downloadable hub repo: cannot find"):
        mept.load(tiny_bert(), "no/such-prompts")
