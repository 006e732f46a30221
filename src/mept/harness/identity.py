"""What an adapter was trained with, recorded in the run folder and checked whenever it is loaded.

An adapter's numbers mean something only on the backbone and label map it was trained with. Two
edits used to pass silently: ``run_config.json`` naming another backbone of the same shape (the
weights load, every prediction is one class), and ``labels.json`` with its label words swapped
(every prediction flips). ``identity.json`` beside them holds

- ``labels_sha256``: a hash of ``labels.json`` as training wrote it (the classes, their order and
  the output form), and
- ``backbone``: its name, hub revision when known, and a hash of its input embedding matrix (the
  weights, not the name: a fine-tuned copy under the same name is a different backbone).

:func:`check_identity` refuses a mismatch with one line naming both sides. ``labels.json`` says
``"identity": "identity.json"`` in every run written since, so a removed ``identity.json`` is
refused too instead of switching the check off; runs written before either load as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mept.errors import MeptError
from mept.files.atomic_file import atomic_write
from mept.files.file_limits import read_json_object
from mept.files.run_names import IDENTITY, LABELS


def labels_fingerprint(info: dict[str, Any]) -> str:
    """sha256 of a ``labels.json`` object, ignoring which mept version wrote it."""
    kept = {k: v for k, v in info.items() if k != "mept_version"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def _weights_hash(tensor: torch.Tensor) -> str:
    data = tensor.detach().to("cpu").contiguous()
    return hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()


def backbone_identity(backbone: nn.Module) -> dict[str, Any]:
    """Name, revision and a hash of the input embeddings (the first parameter when there are none)."""
    config = getattr(backbone, "config", None)
    try:
        weight = backbone.get_input_embeddings().weight  # type: ignore[operator, union-attr]
    except (AttributeError, NotImplementedError, TypeError):
        weight = next(backbone.parameters())
    return {
        "name_or_path": getattr(config, "_name_or_path", "") or "",
        "revision": getattr(config, "_commit_hash", None),
        "embeddings_sha256": _weights_hash(weight),
    }


def write_identity(dest: Path, labels_info: dict[str, Any] | None, backbone: nn.Module) -> None:
    """Record the label map and backbone of the run being trained in ``dest`` (its run folder's :data:`IDENTITY`)."""
    record = {"labels_sha256": labels_fingerprint(labels_info) if labels_info is not None else None,
              "backbone": backbone_identity(backbone)}
    atomic_write(Path(dest), lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))


def check_identity(run: Path, backbone: nn.Module, labels_info: dict[str, Any] | None) -> None:
    """Refuse to load the adapter of ``run`` onto another backbone, or with an edited label map."""
    path = Path(run) / IDENTITY
    if not path.exists():
        labels = Path(run) / LABELS
        info = labels_info if labels_info is not None else (read_json_object(labels) if labels.exists() else {})
        if info.get("identity") == IDENTITY:  # written by a mept that writes identity.json: it was removed
            raise MeptError(f"{path} is missing, but the run was written with it ({labels} says so): without it "
                            f"the label map and backbone cannot be checked; restore it from a copy of the run")
        return  # a run from before identity.json
    saved = read_json_object(path)
    want = saved.get("labels_sha256")
    if labels_info is not None and want and labels_fingerprint(labels_info) != want:
        raise MeptError(f"{Path(run) / LABELS} was changed after training (its fingerprint is not the one in "
                        f"{path}): the adapter's classes would be read in another order; restore {LABELS}")
    trained = saved.get("backbone") or {}
    if trained.get("embeddings_sha256") is None:
        return
    mine = backbone_identity(backbone)
    if mine["embeddings_sha256"] != trained["embeddings_sha256"]:
        raise MeptError(
            f"the adapter in {run} was trained on backbone {trained.get('name_or_path') or '?'} (embeddings "
            f"{trained['embeddings_sha256'][:12]}), but {mine['name_or_path'] or 'the loaded backbone'} has other "
            f"weights (embeddings {mine['embeddings_sha256'][:12]}); load it on its own backbone (check the model "
            f"in run_config.json)")
