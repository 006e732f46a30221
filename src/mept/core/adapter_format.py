"""The adapter format: what ``PromptedModel.save_pretrained`` writes, and every check made reading it back.

A saved adapter is a folder of two files: ``adapter_model.safetensors`` (:data:`WEIGHTS_NAME`:
``method.*`` tensors and the task heads as ``head.<module>.*``) and ``adapter_config.json``
(:data:`CONFIG_NAME`: :func:`adapter_metadata`). The config is versioned (:data:`FORMAT_VERSION`,
as PEFT stamps ``peft_version``): :func:`migrate_adapter_config` is the one place that knows older
layouts, and refuses a file from a newer mept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from mept.errors import MeptError, exception_line
from mept.version import __version__

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
# Version of the files save_pretrained writes; raise it when their keys change, and teach
# migrate_adapter_config to read the old ones. 0: unversioned files (task heads under "head"); 1: prompt
# slots at a decoder's position 0 (no ``attention_sink`` setting).
FORMAT_VERSION = 2


def adapter_metadata(model: Any) -> dict[str, Any]:
    """The one metadata writer: what ``adapter_config.json`` (a prompted model) or ``mept_config.json`` (a
    baseline) holds for an adapter ``model``: the format, the method and its settings, the backbone it fits,
    the saved task heads, their kind and their pooling (a file without ``head`` predates the setting: native)."""
    return {
        "library": "mept",
        "mept_version": __version__,
        "format_version": FORMAT_VERSION,
        "method": model.prompt_config.method,
        "config": model.prompt_config.to_dict(),
        "backbone": {"name_or_path": getattr(model.backbone.config, "_name_or_path", ""), **model.spec.describe()},
        "modules_to_save": model.head_names,
        "head_pooling": model.head_pooling,
        "head": model.head,
    }


def read_adapter_config(path: str | os.PathLike) -> dict[str, Any]:
    """``adapter_config.json`` of a prompted model's adapter folder (which must hold its weights too)."""
    path = Path(path)
    if not (path / CONFIG_NAME).exists() or not (path / WEIGHTS_NAME).exists():
        raise MeptError(f"{path} is not a mept checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    return read_metadata(path / CONFIG_NAME)


def read_metadata(file: str | os.PathLike, versioned: bool = False) -> dict[str, Any]:
    """The one reader of what :func:`adapter_metadata` wrote (a prompted model's ``adapter_config.json``, a
    baseline's ``mept_config.json``): a JSON object in the current format, or one error naming the file.

    ``versioned``: the file was versioned from the start (a baseline's), so one without ``format_version`` is
    damaged, not an unversioned (format 0) adapter to migrate; an unversioned ``adapter_config.json`` is migrated
    (:func:`migrate_adapter_config`).
    """
    file = Path(file)
    try:
        meta = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise MeptError(f"{file} is not readable JSON ({exception_line(exc)})") from None
    if not isinstance(meta, dict):
        raise MeptError(f"{file} is not a JSON object; the checkpoint is damaged")
    if versioned:  # nothing to migrate: its keys are those of format 1
        check_format_version(meta.get("format_version"), meta, file)
        return meta
    return migrate_adapter_config(meta, file)


def migrate_adapter_config(meta: dict[str, Any], origin: str | os.PathLike = CONFIG_NAME) -> dict[str, Any]:
    """Bring a saved ``adapter_config.json`` to the current format; refuse one from a newer mept.

    The only place that knows older layouts: every reader gets the current keys.
    """
    if meta.get("library", "mept") != "mept":
        raise MeptError(f"{origin} was written by {meta['library']!r}, not mept")
    version = meta.get("format_version", 0)
    check_format_version(version, meta, origin)
    meta = dict(meta)
    if version < 1:  # format 0 named the task heads "head"
        meta["modules_to_save"] = meta.pop("head", [])
    if version < 2 and isinstance(meta.get("config"), dict):  # trained with the slots at a decoder's position 0
        meta["config"] = {"attention_sink": False, **meta["config"]}
    meta.update(library="mept", format_version=FORMAT_VERSION)
    meta.setdefault("mept_version", "unknown")
    return meta


def check_format_version(version: Any, meta: dict[str, Any], origin: str | os.PathLike) -> None:
    """The one check of a saved file's format (an adapter's ``adapter_config.json``, a baseline's
    ``mept_config.json``): a whole number this mept reads, else one error saying to upgrade."""
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MeptError(
            f"{origin} has adapter format {version!r} (written by mept {meta.get('mept_version', '?')}), but this "
            f"mept {__version__} reads formats up to {FORMAT_VERSION}; upgrade mept to load it"
        )


def check_backbone_fits(meta: dict[str, Any], spec: Any, path: str | os.PathLike, name: str = CONFIG_NAME) -> None:
    """The saved config (``name``: ``adapter_config.json``, a baseline's ``mept_config.json``) must name a
    backbone of this width and depth."""
    saved = meta.get("backbone")
    if not isinstance(saved, dict) or not isinstance(meta.get("config"), dict) or "method" not in meta:
        raise MeptError(f"{Path(path) / name} lacks its method/config/backbone entries; the checkpoint is damaged")
    for key in ("hidden_size", "num_layers"):
        if saved.get(key) != getattr(spec, key):
            raise MeptError(
                f"checkpoint {path} was trained on a backbone with {key}={saved.get(key)} "
                f"({saved.get('name_or_path') or saved.get('model_type')}), but this backbone has "
                f"{key}={getattr(spec, key)}; load it onto the backbone it was trained with"
            )


def check_adapter_config(model: Any, meta: dict[str, Any], path: str | os.PathLike, name: str = CONFIG_NAME) -> None:
    """A checkpoint's config (file ``name`` in ``path``) must describe ``model`` (a prompted model or a
    baseline): same backbone, method and settings."""
    where = Path(path) / name
    check_backbone_fits(meta, model.spec, path, name)
    if meta["method"] != model.prompt_config.method:
        raise MeptError(f"{where} is for method {meta['method']!r}, but the run trained "
                        f"{model.prompt_config.method!r}; the checkpoint does not belong to this run")
    mine = model.prompt_config.to_dict()
    try:  # settings added since the file was written (e.g. SMoP's balance_loss) read as their defaults
        saved = type(model.prompt_config).from_dict(meta["config"]).to_dict()
    except MeptError:  # unknown or invalid settings: compared as written, so the message names them
        saved = meta["config"]
    differ = sorted(k for k in set(mine) | set(saved) if saved.get(k) != mine.get(k))
    if differ:
        pairs = ", ".join(f"{k} (checkpoint {saved.get(k)!r}, run {mine.get(k)!r})" for k in differ)
        raise MeptError(f"{where} does not match the run's settings: {pairs}; the checkpoint does not belong "
                        f"to this run (or was edited)")


class UnreadableWeights(MeptError):
    """A weight file that is not a readable safetensors file (``file``, and the reader's ``detail``)."""

    def __init__(self, file: Path, detail: str) -> None:
        super().__init__(f"{file} is not a readable safetensors file ({detail}); is it truncated?")
        self.file, self.detail = file, detail


def read_adapter_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``adapter_model.safetensors``; a truncated, empty or non-finite file is a one-line error."""
    file = Path(path) / WEIGHTS_NAME if Path(path).is_dir() else Path(path)
    try:
        state = load_file(str(file))
    except FileNotFoundError:
        raise MeptError(f"{file} does not exist; did the training finish?") from None
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated/garbled files
        detail = exception_line(exc)
        raise UnreadableWeights(file, detail) from None
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise MeptError(f"{file} holds NaN or infinite values in {len(broken)} tensor(s), e.g. {broken[0]}; "
                        f"the run that wrote it diverged (retrain with a lower --lr)")
    return state


def check_adapter_state(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], heads_saved: bool = True
) -> None:
    """Names and shapes of loaded tensors against the model's, with the first difference spelled out.

    A head tensor missing from a file that saved heads is refused (the head would stay as it is,
    e.g. randomly initialised, and score at chance without a word); only a file saved from a
    backbone without heads (``heads_saved=False``, and then no head tensor at all) leaves them be.
    """
    heads_in_file = any(k.startswith("head.") for k in state)
    missing = sorted(k for k in set(expected) - set(state)
                     if heads_saved or heads_in_file or not k.startswith("head."))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = ([f"missing {len(missing)} tensor(s), e.g. {missing[0]}"] if missing else []) + \
                ([f"{len(extra)} unexpected tensor(s), e.g. {extra[0]}"] if extra else [])
        raise MeptError("; ".join(parts))
    for key, want in expected.items():
        got = state.get(key, want)
        if tuple(got.shape) != tuple(want.shape):
            raise MeptError(f"tensor {key} has shape {tuple(got.shape)} in the file, but this model expects "
                            f"{tuple(want.shape)}")
        if want.is_floating_point() and not got.is_floating_point():  # would load as rounded numbers, silently
            raise MeptError(f"tensor {key} is {str(got.dtype).removeprefix('torch.')} in the file, but this model's "
                            f"weights are floating point ({str(want.dtype).removeprefix('torch.')})")
