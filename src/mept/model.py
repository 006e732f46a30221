"""``PromptedModel``: a frozen Hugging Face backbone plus a trainable prompt method.

It looks like the bare backbone from outside: same call signature, same
output object, and token-level outputs (logits, hidden states, attentions)
never include the prompt slots, so evaluation code and trainers work
unchanged. Only prompts, routers and -- for classification -- the task head
are trainable; :meth:`save_pretrained` writes just those.

Each forward's routing travels out with its output, as MoE models return
their router outputs: ``out.routes`` (prompted layer id -> :class:`Route`,
detached; None for unrouted methods) and ``out.router_aux_loss`` (the
routers' weighted auxiliary loss with its graph; None when none is enabled;
already included in ``out.loss`` in training). Nothing of a forward stays on
the model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mept.atomic_file import atomic_write  # noqa: F401  (re-exported: callers import it from here)
from mept.config import PromptConfig, RoutedConfig
from mept.errors import MeptError
from mept.file_limits import check_file_size
from mept.inject.slots import ForwardState, SlotInjector, bind_checkpointing
from mept.inject.spec import BackboneSpec, inspect_backbone
from mept.methods.base import PromptMethod
from mept.registry import method_class
from mept.routing import Route, masked_mean
from mept.version import __version__

if TYPE_CHECKING:  # importing transformers at run time would load PIL with mept (tests/test_package.py)
    from transformers.utils import ModelOutput

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
# Version of the files save_pretrained writes; raise it when their keys change, and teach
# migrate_adapter_config to read the old ones. 0: unversioned files (task heads under "head").
FORMAT_VERSION = 1
# Task heads Hugging Face adds on top of a base model, found by name when ``modules_to_save`` is not given:
# ``classification_head`` is BART's and T5ForSequenceClassification's, ``pre_classifier`` DistilBERT's first layer.
HEAD_NAMES = ("pre_classifier", "classifier", "classification_head", "score", "qa_outputs")
HEADED_TASKS = ("ForSequenceClassification", "ForQuestionAnswering", "ForImageClassification")


class PromptedModel(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        config: PromptConfig,
        *,
        head_pooling: str | None = None,
        modules_to_save: list[str] | None = None,
    ) -> None:
        super().__init__()
        if getattr(backbone, "_mept_wrapped", False):
            raise MeptError("this backbone is already wrapped by a PromptedModel; call .unload() on that one first")
        self.backbone = backbone
        self.spec: BackboneSpec = inspect_backbone(backbone)
        self.prompt_config = config
        self.method: PromptMethod = method_class(config.method)(config, self.spec.hidden_size, self.spec.num_layers)
        self.head_names = find_heads(backbone, modules_to_save)
        self.backbone.requires_grad_(False)
        for name in self.head_names:
            backbone.get_submodule(name).requires_grad_(True)
        layers = backbone.get_submodule(self.spec.layers_path)
        self.injector = SlotInjector(self.method, layers, self.spec.slot_offset)
        # modules that can checkpoint (layers, and stacks that checkpoint their layers): see bind_checkpointing
        self._checkpointable = [m for m in backbone.modules() if hasattr(m, "gradient_checkpointing")]
        self.slot_token_id = getattr(backbone.config, "pad_token_id", None) or 0
        if self.spec.modality == "image":
            self.injector.handles.append(backbone.base_model.embeddings.register_forward_hook(self._insert_image_slots))
        site = mean_pool_site(backbone, self.spec)
        self.head_pooling = head_pooling or ("mean" if site else "native")
        if self.head_pooling not in ("mean", "native"):
            raise MeptError(f"head_pooling must be 'mean' or 'native', got {self.head_pooling!r}")
        if self.head_pooling == "mean":
            if site is None:
                raise MeptError("head_pooling='mean' needs a text encoder whose head reads a pooler or the first token")
            kind, module = site
            if kind == "pooler":
                self.injector.handles.append(module.register_forward_hook(self._mean_pool))
            else:
                self.injector.handles.append(module.register_forward_pre_hook(self._mean_first_token))
        backbone._mept_wrapped = True

    def unload(self) -> nn.Module:
        """Remove the hooks and hand back the bare backbone (still frozen)."""
        self.injector.remove()
        self.backbone._mept_wrapped = False
        self._unloaded = True  # the hooks are gone: a forward here would be neither prompted nor bare
        return self.backbone

    # --- forward --------------------------------------------------------------------

    @property
    def num_slots(self) -> int:
        return self.method.num_slots

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        if getattr(self, "_unloaded", False):
            raise MeptError("this PromptedModel was unload()ed; call the backbone it returned, or wrap it again")
        if not self.injector.enabled:  # inside disabled(): the bare backbone, inputs untouched
            given = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                         pixel_values=pixel_values, token_type_ids=token_type_ids)
            return self.backbone(**{k: v for k, v in given.items() if v is not None}, **kwargs)
        if self.training:
            self._bind_checkpointing()
        # The backbone always returns its output object (we strip slots and add the routing to it);
        # ``return_dict=False`` gets that object's tuple, the routing left out.
        return_dict = kwargs.pop("return_dict", None)
        if self.spec.modality == "image":
            if pixel_values is None:
                raise MeptError("this backbone takes images: pass pixel_values")
            with self.injector.forward(self.method, None) as state:  # the embeddings hook begins it
                out = self.backbone(pixel_values=pixel_values, labels=labels, return_dict=True, **kwargs)
            return self._finish(out, state, return_dict)
        if input_ids is None:
            raise MeptError("pass input_ids (prompted text models build their own input embeddings)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        self._check_length(input_ids.shape[1])
        slotted: dict[str, Any] = {
            "input_ids": self.injector.insert(input_ids, self.slot_token_id),
            "attention_mask": self.injector.insert(attention_mask, 1),
        }
        if token_type_ids is not None:
            slotted["token_type_ids"] = self.injector.insert(token_type_ids, 0)
        if labels is not None:
            # Causal LMs score every position: slots carry no target. Others' labels are per example / decoder side.
            slotted["labels"] = self._slot_labels(labels) if self.spec.task_type == "causal_lm" else labels
        with self.injector.forward(self.method, attention_mask) as state:
            out = self.backbone(**slotted, return_dict=True, **kwargs)
        return self._finish(out, state, return_dict)

    def _bind_checkpointing(self) -> None:
        """Bind every enabled checkpoint function to the forward's state (once; cheap to repeat).

        Also covers checkpointing switched on with ``backbone.gradient_checkpointing_enable()``
        directly, after wrapping.
        """
        for module in self._checkpointable:
            if module.gradient_checkpointing:
                bind_checkpointing(module)

    @contextmanager
    def disabled(self) -> Iterator["PromptedModel"]:
        """Run the bare backbone inside the block: no slots, no prompts, the native head pooling.

        As PEFT's ``disable_adapter``: ``with model.disabled(): base = model(**batch)`` gives what the
        frozen backbone alone computes, e.g. the no-prompt baseline of the analysis.
        """
        with self.injector.disabled():
            yield self

    def _slot_labels(self, labels: torch.Tensor) -> torch.Tensor:
        # Slots carry no target, and the first token is no target either: the bare backbone has no
        # position that predicts it, so the loss stays the one computed from the returned logits.
        labels = self.injector.insert(labels, -100)
        labels[:, self.spec.slot_offset + self.num_slots] = -100
        return labels

    def _mean_pool(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # The head reads the mean of the final states over real tokens instead of the CLS pooler:
        # sentence encoders such as MiniLM are trained for mean pooling, and slots never count.
        state = self.injector.current()
        if state is None:
            return output
        hidden = args[0] if args else output  # (B, T, d)
        return masked_mean(hidden, state.pool_mask.to(hidden.dtype)).to(output.dtype)

    def _mean_first_token(self, module: nn.Module, args: tuple) -> tuple | None:
        # Heads that read position 0 of the sequence get the masked mean there instead (same
        # reason as _mean_pool): (B, T, d) -> (B, T, d) with row 0 replaced.
        state = self.injector.current()
        if state is None or not args or args[0].dim() != 3:
            return None
        hidden = args[0]
        pooled = masked_mean(hidden, state.pool_mask.to(hidden.dtype))[:, None]  # (B, 1, d)
        return (torch.cat([pooled, hidden[:, 1:]], dim=1), *args[1:])

    def _insert_image_slots(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # ViT embeddings (B, 1 + P, d) -> (B, 1 + m + P, d); slots are filled by the first prompted layer.
        state = self.injector.current(begun=False)
        if state is None:
            return output
        state.begin(torch.ones(output.shape[:2], dtype=torch.long, device=output.device))
        return self.injector.insert(output, 0.0)

    def _finish(self, out: ModelOutput, state: ForwardState, return_dict: bool | None) -> Any:
        token_keys = ("encoder_last_hidden_state", "encoder_hidden_states", "encoder_attentions")
        if self.spec.task_type != "seq2seq":
            token_keys = ("last_hidden_state", "hidden_states", "attentions")
            if self.spec.task_type == "causal_lm":
                token_keys += ("logits",)
        for key in token_keys:
            value = out.get(key)
            if value is None:
                continue
            if isinstance(value, tuple):
                out[key] = tuple(self._strip(v, key) for v in value)
            else:
                out[key] = self._strip(value, key)
        live = [state.routes[layer] for layer in sorted(state.routes)]  # (graph attached) in layer order
        aux = self.method.aux_loss(live)
        if self.training and aux is not None and out.get("loss") is not None:
            out["loss"] = out["loss"] + aux
        if return_dict is False:
            return out.to_tuple()
        routes = {layer: state.routes[layer].detach() for layer in sorted(state.routes)}
        return with_routing(out, routes or None, aux)

    def _strip(self, value: torch.Tensor, key: str) -> torch.Tensor:
        value = self.injector.remove_slots(value, dim=1 if "attentions" not in key else 2)
        return self.injector.remove_slots(value, dim=3) if "attentions" in key else value

    def _check_length(self, length: int) -> None:
        limit = self.spec.max_positions
        if limit is not None and self.spec.modality == "text" and length + self.num_slots > limit:
            raise MeptError(
                f"input length {length} + {self.num_slots} prompt slots exceeds the model's {limit} positions; "
                f"lower --max-length to {limit - self.num_slots} or use fewer prompt tokens"
            )

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any):
        """Generate with prompts routed once from the prompt text; returns sequences without slots.

        With the KV cache, slots are written at prefill and reused for every new
        token; without it, each step re-runs the slots with routing pooled over
        the prompt alone -- the two give the same greedy outputs.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if not self.injector.enabled:  # inside disabled(): the bare backbone's generation
            return self.backbone.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        self._check_length(input_ids.shape[1])
        with self.injector.forward(self.method, attention_mask) as state:
            out = self.backbone.generate(
                input_ids=self.injector.insert(input_ids, self.slot_token_id),
                attention_mask=self.injector.insert(attention_mask, 1),
                **kwargs,
            )
        if isinstance(out, torch.Tensor):  # the routing comes back with return_dict_in_generate=True only
            return self.injector.remove_slots(out, dim=1) if self.spec.task_type == "causal_lm" else out
        if self.spec.task_type == "causal_lm":
            out.sequences = self.injector.remove_slots(out.sequences, dim=1)
        routes = {layer: state.routes[layer].detach() for layer in sorted(state.routes)}
        return with_routing(out, routes or None, None)

    def gradient_checkpointing_enable(self) -> None:
        """Checkpoint the backbone's layers (non-reentrant), bound to each forward's state.

        Gradients equal those without checkpointing on every transformers we support
        (``tests/test_checkpointing.py``); see :func:`mept.inject.slots.bind_checkpointing`.
        """
        enable = getattr(self.backbone, "activation_checkpointing_enable", None)  # transformers >= 5 name
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self._bind_checkpointing()

    # --- introspection ----------------------------------------------------------------

    def owns(self, key: str) -> bool:
        """Is ``key`` (a name from this model's ``named_parameters`` / ``state_dict``) the adapter's?

        The one definition of what the adapter owns -- the method's tensors and the task heads --
        used by saving (:meth:`adapter_state_dict`), counting (:meth:`parameter_report`) and the
        optimizer (:meth:`param_groups`), as litgpt's ``adapter_filter``.
        """
        return key.startswith("method.") or any(key.startswith(f"backbone.{h}.") for h in self.head_names)

    def adapter_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the adapter owns, by name (frozen ones included: they are saved too)."""
        return {n: p for n, p in self.named_parameters() if self.owns(n)}

    def param_groups(self, lr: float, head_lr: float) -> list[dict[str, Any]]:
        """Optimizer groups of the trainable tensors the adapter owns (:meth:`owns`): prompts at ``lr``,
        routers at ``lr`` times the method's ``router_lr_scale``, the task heads at ``head_lr``; empty
        groups are left out."""
        router_ids = {id(q) for r in self.method.routers() for q in r.parameters()}
        scale = self.prompt_config.router_lr_scale if isinstance(self.prompt_config, RoutedConfig) else 1.0
        owned = [(n, q) for n, q in self.adapter_parameters().items() if q.requires_grad]
        groups = [
            {"name": "prompt", "params": [q for n, q in owned if n.startswith("method.") and id(q) not in router_ids],
             "lr": lr},
            {"name": "router", "params": [q for n, q in owned if id(q) in router_ids], "lr": lr * scale},
            {"name": "head", "params": [q for n, q in owned if not n.startswith("method.")], "lr": head_lr},
        ]
        return [g for g in groups if g["params"]]

    def head_parameters(self) -> dict[str, torch.Tensor]:
        """The task heads' tensors, keyed ``<head>.<name>`` (the saved ``head.`` entries)."""
        return {k[len("backbone."):]: v for k, v in self.state_dict().items() if k.startswith("backbone.") and self.owns(k)}

    def parameter_report(self) -> dict[str, Any]:
        """Stored trainable parameters and parameters activated per example, as counts and % of the backbone.

        ``trainable`` is what is stored and trained; ``activated`` is what one example uses (routed
        experts it picks + shared experts + routers + head), the count the MEPT paper's "Para"
        column matches for MEPT (``benchmarks/paper_numbers.py``). ``activated_prompt`` is the prompt part alone.
        """
        groups = self.method.parameter_groups()
        owned = self.adapter_parameters()
        head = sum(p.numel() for n, p in owned.items() if not n.startswith("method."))
        backbone = sum(p.numel() for n, p in self.named_parameters() if n.startswith("backbone.") and n not in owned)
        trainable = sum(p.numel() for p in owned.values() if p.requires_grad)
        layers = len(self.method.layer_ids)
        used = self.method.activated_groups()  # per example; stored == used for methods without a router
        activated = used["prompt"] + used["router"] + head
        return {
            "method": self.prompt_config.method,
            "trainable": trainable,
            "prompt": groups["prompt"],
            "router": groups["router"],
            "head": head,
            "backbone": backbone,
            "trainable_percent": 100.0 * trainable / backbone,
            "activated": activated,
            "activated_prompt": used["prompt"],
            "activated_router": used["router"],
            "activated_percent": 100.0 * activated / backbone,
            "prompted_layers": layers,
            "activated_prompt_tokens_per_layer": self.num_slots,
            "activated_prompt_tokens": self.num_slots * layers,
        }

    def print_trainable_parameters(self) -> None:
        r = self.parameter_report()
        print(
            f"trainable params: {r['trainable']:,} || backbone params: {r['backbone']:,} || "
            f"trainable%: {r['trainable_percent']:.4f} || activated per example: {r['activated']:,} "
            f"({r['activated_percent']:.4f}%) || activated prompt tokens: "
            f"{r['activated_prompt_tokens_per_layer']} x {r['prompted_layers']} layers"
        )

    # --- persistence ----------------------------------------------------------------------

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """What ``save_pretrained`` writes: ``method.*`` as is, heads as ``head.<head>.*``."""
        state = {k if k.startswith("method.") else "head." + k[len("backbone."):]: v
                 for k, v in self.state_dict().items() if self.owns(k)}
        return {k: v.detach().contiguous().cpu() for k, v in state.items()}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``adapter_model.safetensors`` (trained weights only) and ``adapter_config.json``, atomically."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "library": "mept",
            "mept_version": __version__,
            "format_version": FORMAT_VERSION,
            "method": self.prompt_config.method,
            "config": self.prompt_config.to_dict(),
            "backbone": {"name_or_path": getattr(self.backbone.config, "_name_or_path", ""), **self.spec.describe()},
            "modules_to_save": self.head_names,
            "head_pooling": self.head_pooling,
        }
        atomic_write(path / WEIGHTS_NAME, lambda tmp: save_file(self.adapter_state_dict(), tmp))
        atomic_write(path / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))

    def load_adapter_weights(self, state: dict[str, torch.Tensor], heads_saved: bool = True) -> None:
        """Load ``adapter_state_dict``-shaped tensors; names and shapes are checked first, one clear error.

        ``heads_saved=False``: the file comes from a model without task heads (its config lists
        none), so this model's heads keep their weights; otherwise every head tensor must be there.
        """
        check_adapter_state(self.adapter_state_dict(), state, heads_saved)
        method_state = {k[len("method."):]: v for k, v in state.items() if k.startswith("method.")}
        self.method.load_state_dict(method_state, strict=True)
        for name in self.head_names:
            prefix = f"head.{name}."
            head_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if head_state:
                self.backbone.get_submodule(name).load_state_dict(head_state, strict=True)

    @classmethod
    def from_pretrained(cls, backbone: nn.Module, path: str | os.PathLike) -> "PromptedModel":
        meta = read_adapter_config(path)
        config = method_class(meta["method"]).config_class.from_dict(meta["config"])
        check_backbone_fits(meta, inspect_backbone(backbone), path)
        model = cls(backbone, config, head_pooling=meta.get("head_pooling"), modules_to_save=meta["modules_to_save"])
        model.load_adapter(path)
        device = next(backbone.parameters()).device
        return model.to(device)

    def load_adapter(self, path: str | os.PathLike, check_config: bool = False) -> None:
        """Load the weights of a saved adapter folder (``save_pretrained``'s) into this model.

        The folder's config is read first, so a file from a newer mept is refused before its
        weights are; a truncated or non-finite file, or a mismatch of names or shapes, is one
        clear error. ``check_config`` also requires the saved method settings to be this
        model's (``mept eval`` rebuilds the model from ``run_config.json``, so an edited or
        foreign ``adapter_config.json`` must not score silently).
        """
        meta = read_adapter_config(path)
        if check_config:
            check_adapter_config(self, meta, path)
        expected = sum(t.numel() * t.element_size() for t in self.adapter_state_dict().values())
        check_file_size(Path(path) / WEIGHTS_NAME, 2 * expected + (1 << 20), "this adapter",
                        "it is not this run's adapter (or is damaged); retrain or restore it")
        state = read_adapter_weights(path)
        try:
            self.load_adapter_weights(state, heads_saved=bool(meta.get("modules_to_save")))
        except MeptError as exc:
            raise MeptError(f"checkpoint {path} does not fit this backbone/method: {exc}") from None
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise MeptError(f"checkpoint {path} does not fit this backbone/method: {first}") from None


def mean_pool_site(backbone: nn.Module, spec: BackboneSpec) -> tuple[str, nn.Module] | None:
    """Where a text classifier's head can read the mean of the final states instead of its CLS input.

    ``("pooler", module)``: BERT-like encoders (the pooler's output is replaced); ``("first_token",
    module)``: encoders whose head reads position 0 itself (RoBERTa, MPNet: ``classifier(sequence)``);
    None: no such place (decoders, images, seq2seq). Prompt methods and baselines pool alike.
    """
    if spec.task_type != "cls" or spec.modality != "text":
        return None
    pooler = getattr(backbone.base_model, "pooler", None)
    if isinstance(pooler, nn.Module):
        return "pooler", pooler
    first_token_head = getattr(backbone, "classifier", None) if spec.slot_offset == 1 else None
    return ("first_token", first_token_head) if isinstance(first_token_head, nn.Module) else None


def check_backbone_fits(meta: dict[str, Any], spec: Any, path: str | os.PathLike) -> None:
    """The saved ``adapter_config.json`` must name a backbone of this width and depth."""
    saved = meta.get("backbone")
    if not isinstance(saved, dict) or not isinstance(meta.get("config"), dict) or "method" not in meta:
        raise MeptError(f"{Path(path) / CONFIG_NAME} lacks its method/config/backbone entries; the checkpoint is damaged")
    for key in ("hidden_size", "num_layers"):
        if saved.get(key) != getattr(spec, key):
            raise MeptError(
                f"checkpoint {path} was trained on a backbone with {key}={saved.get(key)} "
                f"({saved.get('name_or_path') or saved.get('model_type')}), but this backbone has "
                f"{key}={getattr(spec, key)}; load it onto the backbone it was trained with"
            )


def check_adapter_config(model: "PromptedModel", meta: dict[str, Any], path: str | os.PathLike) -> None:
    """A checkpoint's ``adapter_config.json`` must describe ``model``: same backbone, method and settings."""
    where = Path(path) / CONFIG_NAME
    check_backbone_fits(meta, model.spec, path)
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


def read_adapter_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``adapter_model.safetensors``; a truncated, empty or non-finite file is a one-line error."""
    file = Path(path) / WEIGHTS_NAME if Path(path).is_dir() else Path(path)
    try:
        state = load_file(str(file))
    except FileNotFoundError:
        raise MeptError(f"{file} does not exist; did the training finish?") from None
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated/garbled files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeptError(f"{file} is not a readable safetensors file ({detail}); is it truncated?") from None
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


def find_heads(backbone: nn.Module, modules_to_save: list[str] | None = None) -> list[str]:
    """The backbone's task-head modules the adapter trains and saves (PEFT's ``modules_to_save``).

    ``modules_to_save`` names them (dotted submodule paths); otherwise the common Hugging Face
    heads are found by name. A classification or QA model whose head is not found is refused:
    its new head would stay randomly initialised and frozen, and training would silently learn
    nothing useful.
    """
    if modules_to_save is not None:
        names = list(modules_to_save)
        for name in names:
            try:
                backbone.get_submodule(name)
            except AttributeError:
                raise MeptError(f"modules_to_save: {type(backbone).__name__} has no submodule {name!r}") from None
    else:
        names = [n for n in HEAD_NAMES if isinstance(getattr(backbone, n, None), nn.Module)]
    kind = type(backbone).__name__
    if kind.endswith(HEADED_TASKS) and not any(any(True for _ in backbone.get_submodule(n).parameters()) for n in names):
        children = ", ".join(n for n, _ in backbone.named_children())
        raise MeptError(
            f"{kind} has a task head, but none of {', '.join(HEAD_NAMES)} was found among its modules "
            f"({children}); name it with modules_to_save=[...] so it is trained and saved"
        )
    return names


def read_adapter_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    cfg = path / CONFIG_NAME
    if not cfg.exists() or not (path / WEIGHTS_NAME).exists():
        raise MeptError(f"{path} is not a mept checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        meta = json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise MeptError(f"{cfg} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return migrate_adapter_config(meta, cfg)


def migrate_adapter_config(meta: dict[str, Any], origin: str | os.PathLike = CONFIG_NAME) -> dict[str, Any]:
    """Bring a saved ``adapter_config.json`` to the current format; refuse one from a newer mept.

    The only place that knows older layouts: every reader gets the current keys.
    """
    if meta.get("library", "mept") != "mept":
        raise MeptError(f"{origin} was written by {meta['library']!r}, not mept")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MeptError(
            f"{origin} has adapter format {version!r} (written by mept {meta.get('mept_version', '?')}), but this "
            f"mept {__version__} reads formats up to {FORMAT_VERSION}; upgrade mept to load it"
        )
    meta = dict(meta)
    if version < 1:  # format 0 named the task heads "head"
        meta["modules_to_save"] = meta.pop("head", [])
    meta.update(library="mept", format_version=FORMAT_VERSION)
    meta.setdefault("mept_version", "unknown")
    return meta


_ROUTED_OUTPUTS: dict[type, type] = {}
_ROUTED_OUTPUTS_LOCK = threading.Lock()


def with_routing(out: ModelOutput, routes: dict[int, Route] | None, aux_loss: torch.Tensor | None) -> ModelOutput:
    """``out`` as the same output class plus two fields, ``routes`` and ``router_aux_loss``.

    Fields of a dataclass subclass (made once per output class), not loose attributes: they
    survive what rebuilds outputs from their fields (Accelerate's fp32 conversion, DDP and
    ``torch.compile``'s pytree round trips), and ``isinstance`` checks of the original class hold.
    Named ``router_aux_loss`` so a MoE backbone's own ``aux_loss`` stays its own.
    """
    base = type(out)
    with _ROUTED_OUTPUTS_LOCK:
        routed = _ROUTED_OUTPUTS.get(base)
        if routed is None:
            routed = dataclasses.make_dataclass(
                f"Routed{base.__name__}",
                [("routes", dict[int, Route] | None, None), ("router_aux_loss", torch.Tensor | None, None)],
                bases=(base,),
            )
            _ROUTED_OUTPUTS[base] = routed
    return routed(**out, routes=routes, router_aux_loss=aux_loss)


def get_model(
    backbone: nn.Module, config: PromptConfig, head_pooling: str | None = None, modules_to_save: list[str] | None = None
) -> PromptedModel:
    """Wrap a frozen backbone with the method ``config`` names (PEFT's ``get_peft_model``).

    ``head_pooling``: what a BERT-like classification head reads -- ``"mean"`` of the final
    states over real tokens (the default for encoders with a pooler) or ``"native"`` (the
    backbone's own CLS pooler). ``modules_to_save``: the backbone modules trained and saved
    beside the prompts (default: its task head, found by name).
    """
    device = next(backbone.parameters()).device
    cls = method_class(config.method)
    if not issubclass(cls, PromptMethod):  # a baseline (mept.baselines: LoRA, full, probe) is its own model class
        return cls(backbone, config, head_pooling=head_pooling, modules_to_save=modules_to_save).to(device)
    return PromptedModel(backbone, config, head_pooling=head_pooling, modules_to_save=modules_to_save).to(device)


def load(backbone: nn.Module, path: str | os.PathLike, revision: str | None = None) -> PromptedModel:
    """Restore a saved prompt method onto ``backbone``, from a folder or a Hugging Face Hub repo id.

    A string shaped ``owner/name`` that is not an existing path is taken as a hub id; only the two
    adapter files are downloaded (cached by ``huggingface_hub``, so offline reuse works). Anything
    else is a folder, and a missing one is reported as such.
    """
    if isinstance(path, str) and not Path(path).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", path):
        path = _download_adapter(path, revision)
    from mept.baselines.base import BaselineModel, is_baseline_checkpoint

    if is_baseline_checkpoint(path):  # LoRA / full / probe folders carry mept_config.json
        return BaselineModel.from_pretrained(backbone, path)
    return PromptedModel.from_pretrained(backbone, path)


def _download_adapter(repo_id: str, revision: str | None) -> str:
    import huggingface_hub

    try:
        return huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
    except Exception as exc:  # hub errors come in many classes (offline, not found, bad id): one message for all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeptError(f"{repo_id} is neither a folder nor a downloadable hub repo: {first}") from None
