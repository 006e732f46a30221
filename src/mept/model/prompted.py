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

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn

from mept.baselines.base import BaselineModel, is_baseline_checkpoint
from mept.core.adapter_format import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    adapter_metadata,
    check_adapter_config,
    check_adapter_state,
    check_backbone_fits,
    read_adapter_config,
    read_adapter_weights,
)
from mept.core.config import PromptConfig, RoutedConfig
from mept.core.registry import method_class
from mept.core.routed_output import with_routing
from mept.errors import MeptError, exception_line
from mept.files.atomic_file import atomic_write
from mept.files.file_limits import check_file_size
from mept.inject.heads import (
    find_heads,
    hook_mean_pooling,
    install_head,
    mean_pool_site,
    resolve_head_pooling,
    restore_head,
)
from mept.inject.slots import ForwardState, SlotInjector, bind_checkpointing, enable_checkpointing
from mept.inject.spec import BackboneSpec, check_length, inspect_backbone, sink_columns
from mept.methods.base import PromptMethod
from mept.model.adapter import AdapterModel, ParameterReport

if TYPE_CHECKING:  # importing transformers at run time would load PIL with mept (tests/test_package.py)
    from transformers.utils import ModelOutput


class PromptedModel(nn.Module):
    """A prompt method in a frozen backbone: an :class:`~mept.model.adapter.AdapterModel`."""

    def __init__(
        self,
        backbone: nn.Module,
        config: PromptConfig,
        *,
        head_pooling: str | None = None,
        head: str | None = None,
        modules_to_save: list[str] | None = None,
    ) -> None:
        super().__init__()
        if getattr(backbone, "_mept_wrapped", False):
            raise MeptError("this backbone is already wrapped by a PromptedModel; call .unload() on that one first")
        self.backbone = backbone
        self.spec: BackboneSpec = inspect_backbone(backbone)
        self.prompt_config = config
        self.method: PromptMethod = method_class(config.method)(config, self.spec.hidden_size, self.spec.num_layers)
        self.head_pooling = resolve_head_pooling(head_pooling, mean_pool_site(backbone, self.spec))
        self.head = install_head(backbone, self.spec, head, self.head_pooling)  # before the heads are named
        self.head_names = find_heads(backbone, modules_to_save)
        self.backbone.requires_grad_(False)
        for name in self.head_names:
            backbone.get_submodule(name).requires_grad_(True)
        layers = backbone.get_submodule(self.spec.layers_path)
        self.injector = SlotInjector(self.method, layers, self.spec.slot_offset,
                                     sink_columns(self.spec, config.attention_sink))
        # modules that can checkpoint (layers, and stacks that checkpoint their layers): see bind_checkpointing
        self._checkpointable = [m for m in backbone.modules() if hasattr(m, "gradient_checkpointing")]
        self.slot_token_id = getattr(backbone.config, "pad_token_id", None) or 0
        if self.spec.modality == "image":
            self.injector.hook_image_slots(backbone.base_model.embeddings)
        if self.head_pooling == "mean":  # the site of the head install_head left
            self.injector.handles.append(hook_mean_pooling(mean_pool_site(backbone, self.spec), self.injector.pool_mask))
        backbone._mept_wrapped = True

    def unload(self) -> nn.Module:
        """Remove the hooks and hand back the bare backbone (still frozen, with its own head in place)."""
        self.injector.remove()
        restore_head(self.backbone)
        self.backbone._mept_wrapped = False
        self._unloaded = True  # the hooks are gone: a forward here would be neither prompted nor bare
        return self.backbone

    # --- forward --------------------------------------------------------------------

    @property
    def routed(self) -> bool:
        return self.method.routed

    @property
    def routed_layers(self) -> list[int]:
        """1-based prompted layers whose experts a prediction reports (empty for unrouted methods)."""
        return [i + 1 for i in self.method.layer_ids] if self.method.routed else []

    @property
    def num_slots(self) -> int:
        return self.method.num_slots

    @property
    def reserved_positions(self) -> int:
        return self.injector.width

    @property
    def wants_state_init(self) -> bool:
        """Should the trainer fill the prompts from this backbone's hidden states (:meth:`PromptMethod.init_from_states`)?
        ``init="hidden_states"``, or ``"auto"`` on a text decoder (:mod:`mept.model.states` says why)."""
        init = self.prompt_config.init
        return init == "hidden_states" or (init == "auto" and self.spec.text_decoder)

    @property
    def prompt_init(self) -> dict[str, str]:
        """The initialisation asked for and the one this backbone ran (``"auto"`` resolved), for the run's report."""
        asked = self.prompt_config.init
        ran = asked if asked != "auto" else ("hidden_states" if self.wants_state_init else "xavier_normal")
        return {"asked": asked, "ran": ran}

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
        slotted = self.injector.slotted_inputs(input_ids, attention_mask, self.slot_token_id, self.spec.task_type,
                                               token_type_ids, labels)
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

    def _finish(self, out: ModelOutput, state: ForwardState, return_dict: bool | None) -> Any:
        self.injector.strip_outputs(out, self.spec.task_type)
        live = [state.routes[layer] for layer in sorted(state.routes)]  # (graph attached) in layer order
        aux = self.method.aux_loss(live)
        if self.training and aux is not None and out.get("loss") is not None:
            out["loss"] = out["loss"] + aux
        if return_dict is False:
            return out.to_tuple()
        routes = {layer: state.routes[layer].detach() for layer in sorted(state.routes)}
        return with_routing(out, routes or None, aux)

    def _check_length(self, length: int) -> None:
        check_length(self.spec, length, self.reserved_positions)

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
                **self.injector.slotted_inputs(input_ids, attention_mask, self.slot_token_id, self.spec.task_type),
                **kwargs,
            )
        out = self.injector.strip_generated(out, self.spec.task_type)
        if isinstance(out, torch.Tensor):  # the routing comes back with return_dict_in_generate=True only
            return out
        routes = {layer: state.routes[layer].detach() for layer in sorted(state.routes)}
        return with_routing(out, routes or None, None)

    def gradient_checkpointing_enable(self) -> None:
        """Checkpoint the backbone's layers (non-reentrant), bound to each forward's state.

        Gradients equal those without checkpointing on every transformers we support
        (``tests/test_checkpointing.py``); see :func:`mept.inject.slots.bind_checkpointing`.
        """
        enable_checkpointing(self.backbone)
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
        routers at ``lr`` times the method's ``router_lr_scale``, a method's scaled tensors (its
        ``lr_scales``, e.g. MEPT's routed experts) each in a group of its own, the task heads at ``head_lr``;
        empty groups are left out."""
        router_ids = {id(q) for r in self.method.routers() for q in r.parameters()}
        config = self.prompt_config
        scale = config.router_lr_scale_for(self.spec.hidden_size) if isinstance(config, RoutedConfig) else 1.0
        scaled = {f"method.{name}": s for name, s in self.method.lr_scales().items() if s != 1.0}
        owned = [(n, q) for n, q in self.adapter_parameters().items() if q.requires_grad]
        groups = [
            {"name": "prompt", "lr": lr, "params": [
                q for n, q in owned if n.startswith("method.") and id(q) not in router_ids and n not in scaled]},
            *({"name": n.removeprefix("method."), "params": [q for k, q in owned if k == n], "lr": lr * s}
              for n, s in scaled.items()),
            {"name": "router", "params": [q for n, q in owned if id(q) in router_ids], "lr": lr * scale},
            {"name": "head", "params": [q for n, q in owned if not n.startswith("method.")], "lr": head_lr},
        ]
        return [g for g in groups if g["params"]]

    def parameter_report(self) -> ParameterReport:
        """Stored trainable parameters and parameters activated per example, as counts and % of the backbone.

        ``trainable`` is what is stored and trained; ``activated`` is what one example uses (routed
        experts it picks + shared experts + routers + head); our reading is that the MEPT paper's "Para"
        column counts this for MEPT (it matches on T5-Base and Llama, no setting matches T5-Large:
        ``benchmarks/paper_numbers.py``). ``activated_prompt`` is the prompt part alone.
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
        meta = adapter_metadata(self)
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
        model = cls(backbone, config, head_pooling=meta.get("head_pooling"), # saved before the setting: native
                    head=meta.get("head", "native"),
                    modules_to_save=meta["modules_to_save"])
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
        # the bytes save_pretrained would write, counted on the live tensors (no CPU copies to size a file)
        expected = sum(v.numel() * v.element_size() for k, v in self.state_dict().items() if self.owns(k))
        check_file_size(Path(path) / WEIGHTS_NAME, 2 * expected + (1 << 20), "this adapter",
                        "it is not this run's adapter (or is damaged); retrain or restore it")
        state = read_adapter_weights(path)
        try:
            self.load_adapter_weights(state, heads_saved=bool(meta.get("modules_to_save")))
        except MeptError as exc:
            raise MeptError(f"checkpoint {path} does not fit this backbone/method: {exc}") from None
        except RuntimeError as exc:
            first = exception_line(exc)
            raise MeptError(f"checkpoint {path} does not fit this backbone/method: {first}") from None





def get_model(
    backbone: nn.Module, config: PromptConfig, head_pooling: str | None = None, modules_to_save: list[str] | None = None,
    head: str | None = None,
) -> AdapterModel:
    """Wrap a frozen backbone with the method ``config`` names (PEFT's ``get_peft_model``).

    ``head_pooling``: what a BERT-like classification head reads -- ``"mean"`` of the final
    states over real tokens (the default for encoders with a pooler) or ``"native"`` (the
    backbone's own CLS pooler). ``modules_to_save``: the backbone modules trained and saved
    beside the prompts (default: its task head, found by name). ``head``: ``"native"`` keeps the backbone's own
    classification head, ``"linear"`` makes it one linear layer on the pooled state (None: linear where that
    drops a hidden layer of the head's own, as on MPNet; :func:`mept.inject.heads.default_head`).
    """
    device = next(backbone.parameters()).device
    cls = method_class(config.method)
    if not issubclass(cls, PromptMethod):  # a baseline (mept.baselines: LoRA, full, probe) is its own model class
        return cls(backbone, config, head_pooling=head_pooling, head=head, modules_to_save=modules_to_save).to(device)
    return PromptedModel(backbone, config, head_pooling=head_pooling, head=head, modules_to_save=modules_to_save).to(device)


def load(backbone: nn.Module, path: str | os.PathLike, revision: str | None = None) -> AdapterModel:
    """Restore a saved prompt method onto ``backbone``, from a folder or a Hugging Face Hub repo id.

    A string shaped ``owner/name`` that is not an existing path is taken as a hub id; only the two
    adapter files are downloaded (cached by ``huggingface_hub``, so offline reuse works). Anything
    else is a folder, and a missing one is reported as such.
    """
    if isinstance(path, str) and not Path(path).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", path):
        path = _download_adapter(path, revision)
    if is_baseline_checkpoint(path):  # LoRA / full / probe folders carry mept_config.json
        return BaselineModel.from_pretrained(backbone, path)
    return PromptedModel.from_pretrained(backbone, path)


def _download_adapter(repo_id: str, revision: str | None) -> str:
    import huggingface_hub

    try:
        return huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
    except Exception as exc:  # hub errors come in many classes (offline, not found, bad id): one message for all
        first = exception_line(exc)
        raise MeptError(f"{repo_id} is neither a folder nor a downloadable hub repo: {first}") from None
