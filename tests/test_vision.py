"""Deep prompts on a ViT through the whole training path, on real CIFAR-10 images.

The backbone is a tiny random ViT saved to disk with its own image processor,
so ``--model DIR`` goes through AutoModelForImageClassification /
AutoImageProcessor exactly like a hub checkpoint would.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import mept
from mept.cli import main
from mept.data import bigbench, get_task
from mept.data.encode import Encoder
from mept.data.images import bb_cifar10_cache_path, load_bb_cifar10
from mept.harness.evaluate import evaluate, model_inputs
from mept.harness.prepare_run import prepare
from mept.harness.train import train
from mept.harness.train_config import TrainConfig
from mept.model.backbones import load_backbone
from tests.conftest import tiny_vit

pytestmark = pytest.mark.skipif(
    not (bigbench.tarball_path().exists() or bb_cifar10_cache_path(0, 100, 50).exists()),
    reason="BIG-bench CIFAR-10 not available offline",
)

QUICK = ["--max-steps", "3", "--batch-size", "8", "--max-train-examples", "40", "--max-eval-examples", "20",
         "--eval-batch-size", "20", "--prompt-length", "4", "--no-progress"]


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    """A random 3-layer ViT (32x32 images, 8x8 patches, 10 classes) saved with its image processor."""
    path = tmp_path_factory.mktemp("vit") / "vit"
    torch.manual_seed(0)
    tiny_vit(num_labels=10).save_pretrained(path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cifar_batch():
    """16 real CIFAR-10 validation images (mixed classes) as pixel values."""
    return [e.image for e in load_bb_cifar10()["validation"][:16]]


def pixels(processor, images) -> torch.Tensor:
    return processor(images=images, return_tensors="pt")["pixel_values"]  # (B, 3, 32, 32)


@pytest.mark.parametrize("method", ["vfpt", "ptuning_v2", "mept"])
def test_deep_methods_train_on_cifar_from_the_command_line_and_reload(vit_dir, tmp_path, method):
    out = tmp_path / "run"
    code = main(["train", "--method", method, "--model", str(vit_dir), "--dataset", "bb-cifar10",
                 "--output", str(out), *QUICK])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "image_cls" and metrics["method"] == method and metrics["steps"] == 3
    assert 0.0 <= metrics["tasks"]["bb-cifar10"]["accuracy"] <= 100.0
    assert metrics["parameters"]["head"] == 32 * 10 + 10  # the classifier on CLS is trained and saved
    # the best checkpoint, put back on a freshly loaded backbone, scores what metrics.json says
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    reloaded = mept.load(backbone.model, out / "best").eval()
    encoder = Encoder("image_cls", backbone.processor, reloaded.num_slots, 512, None)
    val = encoder.featurize(validation_subset(20))[0]
    spec = get_task("bb-cifar10")
    again = evaluate(reloaded, encoder, {"bb-cifar10": spec}, {"bb-cifar10": val}, batch_size=20)
    assert again["average"] == pytest.approx(metrics["average"])


def validation_subset(n: int):
    """The validation examples train.prepare draws with --max-eval-examples n (same seeded subsample)."""
    from mept.harness.prepare_run import SPLIT_SEED, _subsample

    return _subsample(load_bb_cifar10()["validation"], n, SPLIT_SEED)


def test_vfpt_best_checkpoint_reloads_to_identical_logits(vit_dir, tmp_path, cifar_batch):
    cfg = TrainConfig(method="vfpt", model=str(vit_dir), tasks=["bb-cifar10"], max_steps=4, batch_size=8,
                      max_train_examples=40, max_eval_examples=20, prompt_length=4, eval_every=2,
                      output=str(tmp_path / "run"), progress=False, method_args={"fourier_fraction": 1.0})
    p = prepare(cfg)
    assert p.encoder.form == "image_cls"
    train(cfg, prepared=p)  # leaves p.model holding the best checkpoint's weights
    trained = p.model.eval()
    x = pixels(p.encoder.processor, cifar_batch)
    with torch.no_grad():
        expected = trained(pixel_values=x).logits  # (16, 10)
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    reloaded = mept.load(backbone.model, tmp_path / "run" / "best").eval()
    with torch.no_grad():
        got = reloaded(pixel_values=x).logits
    assert torch.equal(got, expected)
    # and the prompts really moved away from a fresh model's
    fresh = mept.get_model(load_backbone(str(vit_dir), "image_cls", num_labels=10).model, p.model.prompt_config)
    assert not torch.equal(fresh.method.prompts, reloaded.method.prompts)


def test_vfpt_fourier_transform_is_applied_on_the_image_path(vit_dir, cifar_batch):
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    x = pixels(backbone.processor, cifar_batch)
    logits = {}
    state = None
    for fraction in (0.0, 1.0):
        model = mept.get_model(backbone.model, mept.VFPTConfig(prompt_length=4, fourier_fraction=fraction)).eval()
        if state is None:
            state = model.adapter_state_dict()
        model.load_adapter_weights(state)  # same prompt weights in both
        with torch.no_grad():
            logits[fraction] = model(pixel_values=x).logits
        model.unload()
    assert not torch.allclose(logits[0.0], logits[1.0], atol=1e-4)
    # with no Fourier rows VFPT is exactly P-Tuning v2 with the same prompts
    model = mept.get_model(backbone.model, mept.PTuningV2Config(prompt_length=4)).eval()
    model.load_adapter_weights(state)
    with torch.no_grad():
        assert torch.equal(model(pixel_values=x).logits, logits[0.0])
    model.unload()


def test_image_batches_come_from_the_models_own_processor(vit_dir, cifar_batch):
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    cfg = TrainConfig(method="vfpt", model=str(vit_dir), tasks=["bb-cifar10"], max_train_examples=8,
                      max_eval_examples=8, prompt_length=4, progress=False)
    p = prepare(cfg)
    batch = p.encoder.collate(p.eval_sets["bb-cifar10"], train=False)
    assert set(model_inputs(batch)) == {"pixel_values"}
    assert batch["pixel_values"].shape == (8, 3, 32, 32)
    images = [f.example.image for f in p.eval_sets["bb-cifar10"]]
    assert torch.equal(batch["pixel_values"], pixels(backbone.processor, images))
    assert batch["class_ids"].tolist() == [f.example.label for f in p.eval_sets["bb-cifar10"]]


def test_vtab_style_image_folder_trains_from_the_command_line(vit_dir, tmp_path):
    """``--dataset DIR`` with train.csv / val.csv (VTAB-1k's 800/200 lists, here 12/6 CIFAR images)."""
    root = tmp_path / "vtab"
    (root / "images").mkdir(parents=True)
    examples = [e for e in load_bb_cifar10()["train"] if e.label < 3][:18]
    rows = []
    for i, e in enumerate(examples):
        e.image.save(root / "images" / f"{i}.png")
        rows.append(f"images/{i}.png,{e.label}")
    (root / "train.csv").write_text("path,label\n" + "\n".join(rows[:12]) + "\n")
    (root / "val.csv").write_text("path,label\n" + "\n".join(rows[12:]) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--method", "vfpt", "--model", str(vit_dir), "--dataset", str(root),
                 "--output", str(out), *QUICK]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "image_cls" and metrics["train_examples"] == 12
    assert list(metrics["tasks"]) == ["image-folder:vtab"]
    assert metrics["parameters"]["head"] == 32 * 3 + 3  # three classes from the CSVs, new head
