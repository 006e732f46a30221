"""What the injector needs to know about a backbone, found from the model itself.

Works for any Hugging Face transformer whose layers sit in one
``nn.ModuleList`` of ``num_hidden_layers`` modules (BERT/RoBERTa/DeBERTa,
Llama/Mistral/Qwen, T5's encoder, ViT, ...), so new architectures need no
per-model code.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mept.core.task_types import TaskType
from mept.errors import MeptError


@dataclass
class BackboneSpec:
    model_type: str
    hidden_size: int
    num_layers: int
    layers_path: str  # dotted path of the prompted ModuleList
    slot_offset: int  # where slots go: after CLS for encoders/ViT, at 0 for decoders and T5
    modality: str  # "text" or "image"
    task_type: TaskType
    max_positions: int | None
    decoder_only: bool = False  # a causal decoder (Llama-style): its first position is an attention sink

    @property
    def text_decoder(self) -> bool:
        """A decoder over text: where the sink column (:func:`sink_columns`) and ``init="auto"``'s state rows apply."""
        return self.decoder_only and self.modality == "text"

    def describe(self) -> dict:
        return {
            "model_type": self.model_type,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "task_type": self.task_type.value,
        }


def sink_columns(spec: BackboneSpec, attention_sink: bool) -> int:
    """How many plain columns precede the prompt slots: 1 on a text decoder whose config keeps its
    attention sink (``PromptConfig.attention_sink``, ours), else 0.

    A causal decoder turns whatever token stands first into an attention sink: on SmolLM2 the first
    position's hidden state grows to ~22,400 from layer 12 on (the other tokens' 130-720) and later
    tokens park their attention there. Slots at position 0 overwritten before every layer never become
    that sink; with deep prompts the frozen backbone then computes something else (with Xavier rows the
    last token's final state is at cosine 0.27-0.31 with the bare backbone's before any training, prompt
    tuning's 0.94). One token the prompts never overwrite, in front of them, keeps the sink
    (``benchmarks/studies/decoder_prompts.md``). Encoders, T5 and images have no such position.
    """
    return 1 if attention_sink and spec.text_decoder else 0


def check_length(spec: BackboneSpec, length: int, reserved: int) -> None:
    """Text of ``length`` tokens plus ``reserved`` positions (prompt slots and any sink column) must fit the
    model's positions."""
    limit = spec.max_positions
    if limit is not None and spec.modality == "text" and length + reserved > limit:
        raise MeptError(
            f"input length {length} + {reserved} prompt slots exceeds the model's {limit} positions; "
            f"lower --max-length to {limit - reserved} or use fewer prompt tokens"
        )


# The class names of causal language models: Llama's ``...ForCausalLM`` and GPT-2's ``GPT2LMHeadModel`` (what
# ``AutoModelForCausalLM`` builds for it). Read from a model's class and from a config's ``architectures``.
CAUSAL_LM_CLASSES = ("ForCausalLM", "LMHeadModel")
# XLM's and Flaubert's ``...WithLMHeadModel`` shares the suffix but is a masked LM unless its config sets ``causal``.
CAUSAL_ONLY_IF_CONFIG_SAYS = "WithLMHeadModel"


def is_causal_lm_class(name: str, cfg: object) -> bool:
    """Whether a model class (or a config's ``architectures`` entry) named ``name`` is a causal LM with ``cfg``:
    the one reading of class names behind :func:`task_type_of` and :func:`is_decoder_only`."""
    if not name.endswith(CAUSAL_LM_CLASSES):
        return False
    return not name.endswith(CAUSAL_ONLY_IF_CONFIG_SAYS) or bool(getattr(cfg, "causal", False))


def task_type_of(model: nn.Module) -> TaskType:
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return TaskType.CLS
    if name.endswith("ForImageClassification"):
        return TaskType.IMAGE_CLS
    if is_causal_lm_class(name, model.config):
        return TaskType.CAUSAL_LM
    if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "generate") and "Conditional" in name:
        return TaskType.SEQ2SEQ
    return TaskType.BASE


def width_of(cfg: object) -> int | None:
    """The hidden size a backbone's config states (T5 calls it ``d_model``); None if it states none."""
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None)
    return None if hidden is None else int(hidden)


def modality_of(cfg: object) -> str:
    """``"image"`` for a vision config (an image size, no vocabulary), else ``"text"``."""
    return "image" if hasattr(cfg, "image_size") and not hasattr(cfg, "vocab_size") else "text"


def is_text_decoder(cfg: object, task_type: TaskType | None = None) -> bool:
    """What :attr:`BackboneSpec.text_decoder` says of a model with this config: :func:`inspect_backbone` decides
    it here too, so that ``mept train --lr-grid auto``, which reads the config before any weight loads, cannot
    disagree with the run it configures."""
    return _decoder_only(cfg, task_type) and modality_of(cfg) == "text"


def _decoder_only(cfg: object, task_type: TaskType | None) -> bool:
    """A causal decoder, not the decoder half of an encoder-decoder; a model built as a causal LM is one
    whatever its config says."""
    causal = task_type == TaskType.CAUSAL_LM or is_decoder_only(cfg)
    return causal and not getattr(cfg, "is_encoder_decoder", False)


def inspect_backbone(model: nn.Module) -> BackboneSpec:
    cfg = model.config
    hidden = width_of(cfg)
    n_layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", None)
    if hidden is None or n_layers is None:
        raise MeptError(f"cannot find hidden size / layer count in {type(cfg).__name__}")
    encoder_decoder = bool(getattr(cfg, "is_encoder_decoder", False))
    candidates = [
        name
        for name, mod in model.named_modules()
        if isinstance(mod, nn.ModuleList) and len(mod) == n_layers and name
    ]
    if encoder_decoder:  # prompts live in the encoder only
        candidates = [c for c in candidates if "encoder" in c and "decoder" not in c]
    if not candidates:
        raise MeptError(f"cannot find the {n_layers} transformer layers of {type(model).__name__}")
    layers_path = min(candidates, key=len)
    modality = modality_of(cfg)
    task_type = task_type_of(model)
    decoder_only = _decoder_only(cfg, task_type)
    offset = 0 if (encoder_decoder or decoder_only) else 1
    return BackboneSpec(
        model_type=getattr(cfg, "model_type", type(model).__name__),
        hidden_size=int(hidden),
        num_layers=int(n_layers),
        layers_path=layers_path,
        slot_offset=offset,
        modality=modality,
        task_type=task_type,
        max_positions=getattr(cfg, "max_position_embeddings", None),
        decoder_only=decoder_only,
    )


def is_decoder_only(cfg: object) -> bool:
    """A decoder-only language model's config (Llama-style sequence classifiers have no ``is_decoder`` flag;
    their architecture list says CausalLM)."""
    archs = getattr(cfg, "architectures", None) or []
    return bool(getattr(cfg, "is_decoder", False)) or any(is_causal_lm_class(a, cfg) for a in archs) \
        or getattr(cfg, "model_type", "") in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "gpt2",
                                              "gpt_neox", "opt", "falcon")
