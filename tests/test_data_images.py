"""Vision data: BIG-bench CIFAR-10 split, image folders / CSV lists, Fashion-MNIST IDX reader."""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mept.data import bigbench, images
from mept.data.images import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    load_bb_cifar10,
    load_bb_cifar10_arrays,
    load_fashion_mnist,
    load_image_folder,
    read_idx,
)
from mept.data.registry import get_task, load_task
from mept.errors import MeptError

needs_bigbench = pytest.mark.skipif(not bigbench.tarball_path().exists(), reason="BIG-bench tarball not downloaded")


@pytest.fixture
def image_cache(tmp_path, monkeypatch) -> Path:
    """Send the decoded-split cache to a temp folder; BIG-bench files stay in the real cache."""
    monkeypatch.setattr(images, "cache_dir", lambda: tmp_path)
    return tmp_path / "images"


@pytest.fixture(scope="module")
def cifar_default(tmp_path_factory) -> dict:
    """The default split, decoded once for the module into a private cache."""
    if not bigbench.tarball_path().exists():
        pytest.skip("BIG-bench tarball not downloaded")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(images, "cache_dir", lambda: tmp_path_factory.mktemp("cache"))
        return {"splits": load_bb_cifar10(seed=0), "arrays": load_bb_cifar10_arrays(seed=0)}


# ---------------------------------------------------------------- CIFAR-10


@needs_bigbench
def test_cifar_split_is_stratified_with_vtab_like_counts(cifar_default):
    splits = cifar_default["splits"]
    assert Counter(e.target for e in splits["train"]) == {c: 100 for c in CIFAR10_CLASSES}
    assert Counter(e.target for e in splits["validation"]) == {c: 50 for c in CIFAR10_CLASSES}
    arrays = cifar_default["arrays"]
    assert not set(arrays["train_index"]) & set(arrays["validation_index"]), "train and validation share images"


@needs_bigbench
def test_cifar_examples_are_32x32_rgb_with_class_name_targets(cifar_default):
    for example in cifar_default["splits"]["train"][:50] + cifar_default["splits"]["validation"][:50]:
        assert example.image.size == (32, 32) and example.image.mode == "RGB"
        assert example.text == "" and example.task == "bb-cifar10"
        assert example.target == CIFAR10_CLASSES[example.label]
    assert get_task("bb-cifar10").verbalizer == CIFAR10_CLASSES and get_task("bb-cifar10").kind == "image"


@needs_bigbench
def test_cifar_labels_and_pixels_match_bigbench_source(cifar_default):
    arrays = cifar_default["arrays"]
    source = bigbench.read_task("cifar10_classification/base64")["examples"]
    for i in range(0, 1000, 97):
        item = source[arrays["train_index"][i]]
        scores = item["target_scores"]
        assert CIFAR10_CLASSES[arrays["train_labels"][i]] == max(scores, key=scores.get)
        np.testing.assert_array_equal(arrays["train_images"][i], images._decode_png_base64(item["input"]))


@needs_bigbench
def test_cifar_split_is_deterministic_per_seed_and_differs_across_seeds(image_cache):
    first = load_bb_cifar10_arrays(seed=3, train_per_class=4, val_per_class=2)
    for f in image_cache.iterdir():
        f.unlink()  # force a fresh decode, not a cache hit
    again = load_bb_cifar10_arrays(seed=3, train_per_class=4, val_per_class=2)
    other = load_bb_cifar10_arrays(seed=4, train_per_class=4, val_per_class=2)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert set(first["train_index"]) != set(other["train_index"])
    assert len(first["train_labels"]) == 40 and len(first["validation_labels"]) == 20


@needs_bigbench
def test_cifar_cache_round_trip_gives_identical_arrays(image_cache):
    fresh = load_bb_cifar10_arrays(seed=1, train_per_class=3, val_per_class=2)
    path = images.bb_cifar10_cache_path(1, 3, 2)
    assert path.exists() and path.parent == image_cache
    cached = load_bb_cifar10_arrays(seed=1, train_per_class=3, val_per_class=2)
    assert cached.keys() == fresh.keys()
    for key in fresh:
        assert cached[key].dtype == fresh[key].dtype
        np.testing.assert_array_equal(cached[key], fresh[key])
    splits = load_bb_cifar10(seed=1, train_per_class=3, val_per_class=2)
    np.testing.assert_array_equal(np.asarray(splits["train"][0].image), fresh["train_images"][0])


@needs_bigbench
def test_cifar_rejects_more_images_per_class_than_exist(image_cache):
    with pytest.raises(MeptError, match="only 1000 images"):
        load_bb_cifar10_arrays(seed=0, train_per_class=900, val_per_class=200)


# ---------------------------------------------------------------- image folders and CSV lists

COLOURS = {"cat": (255, 0, 0), "dog": (0, 0, 255)}


def _png(path: Path, colour=(0, 255, 0), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (8, 6), colour)
    (img.convert(mode) if mode != "RGB" else img).save(path)
    return path


def _class_folders(root: Path, per_class: int = 5) -> Path:
    for name, colour in COLOURS.items():
        for i in range(per_class):
            _png(root / name / f"{i}.png", colour)
    return root


def test_image_folder_classes_are_sorted_folders_and_split_per_class(tmp_path):
    root = _class_folders(tmp_path / "pets")
    spec, splits = load_image_folder(root, seed=0, val_fraction=0.2)
    assert spec.verbalizer == ("cat", "dog") and spec.kind == "image" and spec.metric == "accuracy"
    assert Counter(e.target for e in splits["train"]) == {"cat": 4, "dog": 4}
    assert Counter(e.target for e in splits["validation"]) == {"cat": 1, "dog": 1}
    for example in splits["train"] + splits["validation"]:
        assert example.image.mode == "RGB" and example.image.size == (8, 6)
        assert example.image.getpixel((0, 0)) == COLOURS[example.target]
        assert example.target == spec.verbalizer[example.label]


def test_image_folder_split_is_deterministic_per_seed(tmp_path):
    root = _class_folders(tmp_path / "pets", per_class=10)
    for i, name in enumerate(sorted((root / "cat").iterdir())):
        _png(name, (i * 20, 0, 0))  # make images distinguishable
    def val_pixels(seed):
        return sorted(e.image.getpixel((0, 0)) for e in load_image_folder(root, seed=seed)[1]["validation"])
    assert val_pixels(5) == val_pixels(5)
    assert any(val_pixels(5) != val_pixels(s) for s in range(6, 10))


def test_image_folder_converts_grey_and_rgba_to_rgb(tmp_path):
    _png(tmp_path / "d" / "a" / "grey.png", (90, 90, 90), mode="L")
    _png(tmp_path / "d" / "b" / "alpha.png", (1, 2, 3), mode="RGBA")
    _, splits = load_image_folder(tmp_path / "d", val_fraction=0.0)
    assert {e.image.mode for e in splits["train"]} == {"RGB"} and splits["validation"] == []


def test_vtab_style_train_and_val_csv_are_used_as_given(tmp_path):
    root = tmp_path / "vtab"
    for i in range(3):
        _png(root / "images" / f"t{i}.png", (i, 0, 0))
        _png(root / "images" / f"v{i}.png", (0, i, 0))
    labels = ["10", "2", "10"]
    (root / "train.csv").write_text("path,label\n" + "".join(f"images/t{i}.png,{labels[i]}\n" for i in range(3)))
    (root / "val.csv").write_text("path,label\n" + "".join(f"images/v{i}.png,{labels[i]}\n" for i in range(3)))
    spec, splits = load_image_folder(root)
    assert spec.verbalizer == ("2", "10"), "integer labels sort numerically"
    assert [e.image.getpixel((0, 0)) for e in splits["train"]] == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert [e.label for e in splits["validation"]] == [1, 0, 1]
    assert [e.target for e in splits["validation"]] == ["10", "2", "10"]


def test_single_csv_file_is_split_like_folders(tmp_path):
    rows = []
    for name, colour in COLOURS.items():
        for i in range(5):
            _png(tmp_path / "img" / f"{name}{i}.png", colour)
            rows.append(f"img/{name}{i}.png,{name}")
    csv_path = tmp_path / "all.csv"
    csv_path.write_text("path,label\n" + "\n".join(rows) + "\n")
    spec, splits = load_image_folder(csv_path, val_fraction=0.4)
    assert spec.name == "image-folder:all"
    assert Counter(e.target for e in splits["validation"]) == {"cat": 2, "dog": 2}
    assert len(splits["train"]) == 6


def test_image_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(MeptError, match="no class folders"):
        load_image_folder(tmp_path / "empty_root")
    root = _class_folders(tmp_path / "pets", per_class=2)
    (root / "zebra").mkdir()
    with pytest.raises(MeptError, match="zebra.*holds no images"):
        load_image_folder(root)
    (root / "zebra" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(MeptError, match="broken.png"):
        load_image_folder(root, val_fraction=0.0)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("path,class\nx.png,1\n")
    with pytest.raises(MeptError, match="missing column.*label"):
        load_image_folder(bad_csv)
    with pytest.raises(MeptError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")


# ---------------------------------------------------------------- Fashion-MNIST IDX


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _fake_fashion(root: Path, per_class: int, gz_train: bool = True) -> Path:
    """Images whose every pixel is ``10 * label`` so a label can be read back from the pixels."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, gz in (("train", gz_train), ("t10k", not gz_train)):
        labels = np.repeat(np.arange(10), per_class)
        imgs = np.broadcast_to((labels * 10)[:, None, None], (len(labels), 28, 28)).copy()
        suffix = ".gz" if gz else ""
        _write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", imgs, gz)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    return root


def test_read_idx_reads_plain_and_gzipped_files(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "plain", array, gz=False)
    _write_idx(tmp_path / "packed.gz", array, gz=True)
    for name in ("plain", "packed.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, array)
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(MeptError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes((tmp_path / "plain").read_bytes()[:-1])
    with pytest.raises(MeptError, match="IDX header says shape"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_split_counts_rgb_and_labels(tmp_path):
    root = _fake_fashion(tmp_path / "fm", per_class=5)
    splits = load_fashion_mnist(root, seed=0, train_per_class=3, val_per_class=2, with_test=True)
    assert Counter(e.label for e in splits["train"]) == {i: 3 for i in range(10)}
    assert Counter(e.label for e in splits["validation"]) == {i: 2 for i in range(10)}
    assert len(splits["test"]) == 50
    for example in splits["train"] + splits["test"]:
        assert example.image.mode == "RGB" and example.image.size == (28, 28)
        assert example.image.getpixel((5, 5)) == (10 * example.label,) * 3
        assert example.target == FASHION_MNIST_CLASSES[example.label]


def test_fashion_mnist_registered_loader_uses_data_dir(tmp_path):
    root = _fake_fashion(tmp_path / "fm", per_class=150, gz_train=False)
    splits = load_task("fashion-mnist", data_dir=str(root), seed=1)
    assert len(splits["train"]) == 1000 and len(splits["validation"]) == 500


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(MeptError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "absent")
    (tmp_path / "half").mkdir()
    with pytest.raises(MeptError, match="train-images-idx3-ubyte.*dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "half")


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_the_real_fashion_mnist_files_read_as_ten_balanced_classes():
    splits = load_task("fashion-mnist", seed=0)
    assert Counter(e.label for e in splits["train"]) == {i: 100 for i in range(10)}
    assert Counter(e.label for e in splits["validation"]) == {i: 50 for i in range(10)}
    train_ids = {e.image.tobytes() for e in splits["train"]}
    assert not any(e.image.tobytes() in train_ids for e in splits["validation"])  # disjoint draws
    test = load_fashion_mnist(with_test=True, train_per_class=1, val_per_class=1)["test"]
    assert len(test) == 10_000 and Counter(e.label for e in test) == {i: 1000 for i in range(10)}
    # real scans: grey (three equal channels), varied, not blank
    pixels = np.asarray(splits["train"][0].image)
    assert pixels.shape == (28, 28, 3) and (pixels[..., 0] == pixels[..., 2]).all() and pixels.std() > 10
