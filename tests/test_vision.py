"""Deep prompts on a ViT through the whole training path, on real images.

The images are Fashion-MNIST (Debian's ``dataset-fashion-mnist``, which ``scripts/setup.sh`` installs when it runs
as root) or, where BIG-bench can be read, its copy of CIFAR-10: both are ten classes of real photographs or
scans; the tests skip only when neither is on the machine.

The backbone is a tiny random ViT saved to disk with its own image processor,
so ``--model DIR`` goes through AutoModelForImageClassification /
AutoImageProcessor exactly like a hub checkpoint would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

import mept
from mept.cli import main
from mept.data import bigbench, get_task
from mept.data.encode import Encoder
from mept.data.images import FASHION_MNIST_ROOT, bb_cifar10_cache_path, load_bb_cifar10, load_fashion_mnist
from mept.harness.evaluate import evaluate, model_inputs
from mept.harness.prepare_run import prepare
from mept.harness.train import train
from mept.harness.train_config import TrainConfig
from mept.model.backbones import load_backbone
from tests.conftest import tiny_vit

if Path(FASHION_MNIST_ROOT).is_dir():
    TASK, load_images = "fashion-mnist", load_fashion_mnist
else:
    TASK, load_images = "bb-cifar10", load_bb_cifar10

pytestmark = pytest.mark.skipif(
    TASK == "bb-cifar10" and not (bigbench.tarball_path().exists() or bb_cifar10_cache_path(0, 100, 50).exists()),
    reason="no real images offline: install Debian's dataset-fashion-mnist (scripts/setup.sh does, as root) or BIG-bench",
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
def image_batch():
    """16 real validation images (mixed classes)."""
    return [e.image for e in load_images()["validation"][:16]]


def pixels(processor, images) -> torch.Tensor:
    return processor(images=images, return_tensors="pt")["pixel_values"]  # (B, 3, 32, 32)


@pytest.mark.parametrize("method", ["vfpt", "ptuning_v2", "mept"])
def test_deep_methods_train_on_real_images_from_the_command_line_and_reload(vit_dir, tmp_path, method):
    out = tmp_path / "run"
    code = main(["train", "--method", method, "--model", str(vit_dir), "--dataset", TASK,
                 "--output", str(out), *QUICK])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "image_cls" and metrics["method"] == method and metrics["steps"] == 3
    assert 0.0 <= metrics["tasks"][TASK]["accuracy"] <= 100.0
    assert metrics["parameters"]["head"] == 32 * 10 + 10  # the classifier on CLS is trained and saved
    # the best checkpoint, put back on a freshly loaded backbone, scores what metrics.json says
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    reloaded = mept.load(backbone.model, out / "best").eval()
    encoder = Encoder("image_cls", backbone.processor, reloaded.num_slots, 512, None)
    val = encoder.featurize(validation_subset(20))[0]
    spec = get_task(TASK)
    again = evaluate(reloaded, encoder, {TASK: spec}, {TASK: val}, batch_size=20)
    assert again["average"] == pytest.approx(metrics["average"])


def validation_subset(n: int):
    """The validation examples train.prepare draws with --max-eval-examples n (same seeded subsample)."""
    from mept.harness.prepare_run import SPLIT_SEED, _subsample

    return _subsample(load_images()["validation"], n, SPLIT_SEED)


def test_vfpt_best_checkpoint_reloads_to_identical_logits(vit_dir, tmp_path, image_batch):
    cfg = TrainConfig(method="vfpt", model=str(vit_dir), tasks=[TASK], max_steps=4, batch_size=8,
                      max_train_examples=40, max_eval_examples=20, prompt_length=4, eval_every=2,
                      output=str(tmp_path / "run"), progress=False, method_args={"fourier_fraction": 1.0})
    p = prepare(cfg)
    assert p.encoder.form == "image_cls"
    train(cfg, prepared=p)  # leaves p.model holding the best checkpoint's weights
    trained = p.model.eval()
    x = pixels(p.encoder.processor, image_batch)
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


def test_vfpt_fourier_transform_is_applied_on_the_image_path(vit_dir, image_batch):
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    x = pixels(backbone.processor, image_batch)
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


def test_image_batches_come_from_the_models_own_processor(vit_dir, image_batch):
    backbone = load_backbone(str(vit_dir), "image_cls", num_labels=10)
    cfg = TrainConfig(method="vfpt", model=str(vit_dir), tasks=[TASK], max_train_examples=8,
                      max_eval_examples=8, prompt_length=4, progress=False)
    p = prepare(cfg)
    batch = p.encoder.collate(p.eval_sets[TASK], train=False)
    assert set(model_inputs(batch)) == {"pixel_values"}
    assert batch["pixel_values"].shape == (8, 3, 32, 32)
    images = [f.example.image for f in p.eval_sets[TASK]]
    assert torch.equal(batch["pixel_values"], pixels(backbone.processor, images))
    assert batch["class_ids"].tolist() == [f.example.label for f in p.eval_sets[TASK]]


def test_vtab_style_image_folder_trains_from_the_command_line(vit_dir, tmp_path):
    """``--dataset DIR`` with train.csv / val.csv (VTAB-1k's 800/200 lists, here 12/6 real images)."""
    root = tmp_path / "vtab"
    (root / "images").mkdir(parents=True)
    examples = [e for e in load_images()["train"] if e.label < 3][:18]
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
