"""Vision tasks: BIG-bench's CIFAR-10 images, Fashion-MNIST IDX files, and user image folders.

Every loader returns :class:`Example` records with ``image`` an RGB PIL image,
``text = ""``, ``label`` the class id and ``target`` the class name, so a
vision backbone reads the image and a text-to-text model could read the name.

Splits are small and stratified on purpose (VTAB-1k-like: 100 train and 50
validation images per class by default): prompt tuning is meant to adapt from
few examples, and small splits keep a run on a laptop feasible. The same seed
always draws the same images.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from mept.data.bigbench import read_task
from mept.data.examples import Example
from mept.data.registry import Splits, TaskSpec, check_source, register_task
from mept.errors import MeptError
from mept.files.paths import cache_dir

if TYPE_CHECKING:
    from PIL import Image  # imported where used: registering these tasks must not load Pillow

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist puts it
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

BB_CIFAR10 = TaskSpec("bb-cifar10", CIFAR10_CLASSES, "accuracy", "image", "CIFAR-10 test images shipped in BIG-bench")
FASHION_MNIST = TaskSpec(
    "fashion-mnist", FASHION_MNIST_CLASSES, "accuracy", "image", "Zalando Fashion-MNIST, grey to RGB"
)


# ---------------------------------------------------------------- shared pieces


def per_class_split(
    labels: np.ndarray, seed: int, sizes: Callable[[int], tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded per-class split into (train, validation).

    ``sizes(n)`` says how many of a class's ``n`` items go to train and to
    validation. Each split is shuffled across classes so that taking its first
    ``k`` items still gives a mix of classes.
    """
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train, n_val = sizes(len(idx))
        train.append(idx[:n_train])
        val.append(idx[n_train : n_train + n_val])
    train_idx = rng.permutation(np.concatenate(train)) if train else np.zeros(0, np.int64)
    val_idx = rng.permutation(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return train_idx, val_idx


def _fixed_sizes(train_per_class: int, val_per_class: int, what: str) -> Callable[[int], tuple[int, int]]:
    if train_per_class < 1 or val_per_class < 0:
        raise MeptError(f"{what}: train_per_class must be >= 1 and val_per_class >= 0")

    def sizes(n: int) -> tuple[int, int]:
        if train_per_class + val_per_class > n:
            raise MeptError(
                f"{what}: train_per_class + val_per_class = {train_per_class + val_per_class} "
                f"but a class has only {n} images"
            )
        return train_per_class, val_per_class

    return sizes


def _fraction_sizes(val_fraction: float) -> Callable[[int], tuple[int, int]]:
    if not 0.0 <= val_fraction < 1.0:
        raise MeptError(f"val_fraction must be in [0, 1), got {val_fraction}")

    def sizes(n: int) -> tuple[int, int]:
        n_val = int(round(n * val_fraction))
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)  # every class in both splits when it can be
        return n - n_val, n_val

    return sizes


def examples_from_arrays(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], task: str) -> list[Example]:
    """``images`` (N, H, W, 3) uint8 and ``labels`` (N,) into image Examples."""
    from PIL import Image

    return [
        Example(text="", label=int(y), target=classes[int(y)], task=task, image=Image.fromarray(x, "RGB"))
        for x, y in zip(images, labels)
    ]


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write atomically so an interrupted run never leaves a half-written cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


# ---------------------------------------------------------------- BIG-bench CIFAR-10


def _decode_png_base64(data: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), dtype=np.uint8)


def bb_cifar10_cache_path(seed: int, train_per_class: int, val_per_class: int) -> Path:
    return cache_dir() / "images" / f"bb_cifar10_seed{seed}_train{train_per_class}_val{val_per_class}.npz"


def load_bb_cifar10_arrays(seed: int = 0, train_per_class: int = 100, val_per_class: int = 50) -> dict[str, np.ndarray]:
    """The split as arrays: ``{train,validation}_{images,labels,index}``; images (N, 32, 32, 3) uint8.

    ``*_index`` is the position in BIG-bench's example list, kept for tracing.
    The first call reads the 34 MB task file and decodes only the chosen PNGs;
    the result is cached as ``.npz`` so later calls skip both.
    """
    path = bb_cifar10_cache_path(seed, train_per_class, val_per_class)
    if path.exists():
        with np.load(path) as cached:
            return {k: cached[k] for k in cached.files}
    sizes = _fixed_sizes(train_per_class, val_per_class, "bb-cifar10")
    examples = read_task("cifar10_classification/base64")["examples"]
    class_id = {name: i for i, name in enumerate(CIFAR10_CLASSES)}
    labels = np.array([class_id[max(e["target_scores"], key=e["target_scores"].get)] for e in examples])
    arrays: dict[str, np.ndarray] = {}
    for split, idx in zip(("train", "validation"), per_class_split(labels, seed, sizes)):
        images = [_decode_png_base64(examples[i]["input"]) for i in idx]
        arrays[f"{split}_images"] = np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)
        arrays[f"{split}_labels"] = labels[idx].astype(np.int64)
        arrays[f"{split}_index"] = idx.astype(np.int64)
    _save_npz(path, **arrays)
    return arrays


def load_bb_cifar10(seed: int = 0, train_per_class: int = 100, val_per_class: int = 50) -> Splits:
    """Seeded stratified CIFAR-10 split from BIG-bench's copy of the CIFAR-10 test set."""
    arrays = load_bb_cifar10_arrays(seed, train_per_class, val_per_class)
    return {
        split: examples_from_arrays(
            arrays[f"{split}_images"], arrays[f"{split}_labels"], CIFAR10_CLASSES, BB_CIFAR10.name
        )
        for split in ("train", "validation")
    }


def _bb_cifar10_task(source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
    check_source(BB_CIFAR10.name, source, ("auto", "bigbench"))
    return load_bb_cifar10(seed=seed)


# ---------------------------------------------------------------- Fashion-MNIST (IDX files)

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or plain.

    Layout: two zero bytes, a dtype code, the number of dimensions, each
    dimension as a big-endian uint32, then the data in C order.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise MeptError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise MeptError(f"{path}: IDX header says shape {shape} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise MeptError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}; install the Debian package "
        f"dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass the folder holding the IDX files"
    )


def _read_idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise MeptError(f"Fashion-MNIST in {root}: {prefix} images {images.shape} do not match labels {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise MeptError(f"Fashion-MNIST in {root}: {prefix} labels outside 0..9")
    return images, labels


def _grey_to_rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images.astype(np.uint8)[..., None], 3, axis=-1)  # (N, 28, 28) -> (N, 28, 28, 3)


def load_fashion_mnist(
    root: str | Path = FASHION_MNIST_ROOT,
    seed: int = 0,
    train_per_class: int = 100,
    val_per_class: int = 50,
    with_test: bool = False,
) -> Splits:
    """Stratified train/validation drawn from the training IDX files; ``with_test`` adds the 10k test set.

    Images are grey; they are repeated to three channels so every vision
    backbone sees the same RGB input as for CIFAR-10.
    """
    root = Path(root)
    if not root.is_dir():
        raise MeptError(
            f"Fashion-MNIST folder {root} does not exist; install the Debian package dataset-fashion-mnist "
            f"or pass the folder holding train-images-idx3-ubyte[.gz] and friends"
        )
    images, labels = _read_idx_pair(root, "train")
    train_idx, val_idx = per_class_split(labels, seed, _fixed_sizes(train_per_class, val_per_class, "fashion-mnist"))
    splits = {
        split: examples_from_arrays(_grey_to_rgb(images[idx]), labels[idx], FASHION_MNIST_CLASSES, FASHION_MNIST.name)
        for split, idx in (("train", train_idx), ("validation", val_idx))
    }
    if with_test:
        test_images, test_labels = _read_idx_pair(root, "t10k")
        splits["test"] = examples_from_arrays(
            _grey_to_rgb(test_images), test_labels, FASHION_MNIST_CLASSES, FASHION_MNIST.name
        )
    return splits


def _fashion_mnist_task(source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
    check_source(FASHION_MNIST.name, source, ("auto", "local"))
    return load_fashion_mnist(root=data_dir or FASHION_MNIST_ROOT, seed=seed)


# ---------------------------------------------------------------- user image folders and CSV lists


def _open_rgb(path: Path) -> Image.Image:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise MeptError(f"cannot read image {path}: {err}") from err


def _class_order(names: set[str]) -> list[str]:
    """Sorted class names; numerically when every label is an integer (VTAB CSVs use 0..K-1)."""
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _read_csv(path: Path) -> list[tuple[Path, str]]:
    """``path,label`` rows with a header; image paths are relative to the CSV's folder."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise MeptError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected a header row 'path,label'"
            )
        rows = [(path.parent / row["path"].strip(), row["label"].strip()) for row in reader if row["path"]]
    if not rows:
        raise MeptError(f"{path}: no rows")
    return rows


def _scan_class_folders(root: Path) -> list[tuple[Path, str]]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise MeptError(
            f"{root}: no class folders; expected one sub-folder of images per class, or train.csv + val.csv"
        )
    rows = []
    for d in class_dirs:
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MeptError(f"class folder {d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        rows.extend((p, d.name) for p in files)
    return rows


def _rows_to_examples(
    rows: list[tuple[Path, str]], class_id: dict[str, int], classes: tuple[str, ...], task: str
) -> list[Example]:
    return [
        Example(text="", label=class_id[label], target=classes[class_id[label]], task=task, image=_open_rgb(path))
        for path, label in rows
    ]


def load_image_folder(root: str | Path, seed: int = 0, val_fraction: float = 0.2) -> tuple[TaskSpec, Splits]:
    """Load a user's image classification data set and describe it as a task.

    ``root`` may be
      * a folder with one sub-folder per class (classes sorted by name), split
        per class with ``val_fraction`` held out;
      * a folder with ``train.csv`` and ``val.csv`` (VTAB-1k's 800/200 lists),
        used as given;
      * a single ``path,label`` CSV file, split like class folders.
    """
    root = Path(root)
    if not root.exists():
        raise MeptError(f"image data {root} does not exist")
    if root.is_dir() and (root / "train.csv").exists():
        if not (root / "val.csv").exists():
            raise MeptError(f"{root} has train.csv but no val.csv")
        given = {"train": _read_csv(root / "train.csv"), "validation": _read_csv(root / "val.csv")}
    else:
        rows = _read_csv(root) if root.is_file() else _scan_class_folders(root)
        labels = np.array([label for _, label in rows])
        train_idx, val_idx = per_class_split(labels, seed, _fraction_sizes(val_fraction))
        given = {"train": [rows[i] for i in train_idx], "validation": [rows[i] for i in val_idx]}
    classes = tuple(_class_order({label for split_rows in given.values() for _, label in split_rows}))
    class_id = {name: i for i, name in enumerate(classes)}
    name = f"image-folder:{root.stem if root.is_file() else root.name}"
    spec = TaskSpec(name, classes, "accuracy", "image", f"images from {root}")
    splits = {split: _rows_to_examples(split_rows, class_id, classes, name) for split, split_rows in given.items()}
    return spec, splits


register_task(BB_CIFAR10, _bb_cifar10_task)
register_task(FASHION_MNIST, _fashion_mnist_task)
