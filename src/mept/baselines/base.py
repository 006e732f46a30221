"""What every baseline shares: the harness's model interface, without prompt slots or routing.

The harness (``prepare_run`` -> ``train`` -> ``run_report``, ``mept eval / predict``) talks to
its model through a handful of names -- ``forward``, ``param_groups``, ``parameter_report``,
``save_pretrained`` / ``load_adapter``, ``num_slots``, ``method.routed`` -- that
:class:`~mept.model.prompted.PromptedModel` defines for prompt methods. :class:`BaselineModel` defines
the same names for models that change the backbone's weights (LoRA through PEFT, full
fine-tuning) or only train its head (a linear probe), so the harness never branches per method:
same data, templates, label spaces, heads, head pooling, budget, checkpoints and metrics.

A baseline checkpoint folder holds ``mept_config.json`` (which method, its settings, the
backbone it fits, head pooling) beside the weights in the form their own library reads: PEFT's
``adapter_config.json`` + ``adapter_model.safetensors`` for LoRA (``PeftModel.from_pretrained``
loads it), Hugging Face's ``config.json`` + ``model.safetensors`` for full fine-tuning
(``AutoModel...from_pretrained`` loads it), the head's tensors in ``model.safetensors`` for the
probe.
"""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mept.core.adapter_format import adapter_metadata, check_adapter_config, check_backbone_fits, read_metadata
from mept.core.config import PromptConfig
from mept.core.registry import method_class
from mept.core.routed_output import with_routing
from mept.errors import MeptError, exception_line
from mept.inject.heads import find_heads, hook_mean_pooling, install_head, mean_pool_site, resolve_head_pooling
from mept.inject.slots import enable_checkpointing
from mept.inject.spec import BackboneSpec, inspect_backbone

META_NAME = "mept_config.json"  # versioned by mept.core.adapter_format.FORMAT_VERSION
# The attention mask of the forward running in this thread, for the mean-pooling head hooks: a
# value of that forward (set and reset around it), never an attribute a later forward could read.
_FORWARD_MASK: contextvars.ContextVar[torch.Tensor | None] = contextvars.ContextVar("baseline_mask", default=None)


@dataclass
class BaselineConfig:
    """Fields every baseline has (none yet); the class facts the harness reads from any method config.

    ``default_lr`` is ours, per family: what trains MiniLM on the offline suite without
    diverging. ``compare_lr_grid`` is the small grid ``mept compare`` searches on validation (moved with
    the default on a backbone where that moves: ``TrainConfig.auto_lr_grid``).
    ``paper_lr_grid`` (``--lr-grid paper``) is ours too: the MEPT paper states a grid only for prompt methods
    (Appendix B.2), none for these baselines.
    """

    method: ClassVar[str] = ""
    experts_field: ClassVar[str | None] = None
    paper_lr_grid: ClassVar[tuple[float, ...]] = (1e-4, 3e-4, 1e-3)
    default_lr: ClassVar[float] = 1e-3
    compare_lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3)
    paper_settings: ClassVar[dict[str, object]] = {}  # the MEPT paper trains no baseline

    to_dict = PromptConfig.to_dict
    from_dict = classmethod(PromptConfig.from_dict.__func__)  # unknown keys: one error naming the valid ones


class BaselineModel(nn.Module):
    """A Hugging Face backbone changed by a baseline, behind the interface the harness uses.

    Subclasses build ``self.net`` (the module called on inputs) in :meth:`build` and decide what
    is trainable there; everything that requires grad after :meth:`build` is what the baseline
    *owns* (:meth:`owns`): counted, optimised and saved, as litgpt's ``adapter_filter``.
    """

    config_class: ClassVar[type[BaselineConfig]]
    wrapped_flag = "_mept_wrapped"

    def __init__(
        self,
        backbone: nn.Module,
        config: BaselineConfig,
        *,
        head_pooling: str | None = None,
        head: str | None = None,
        modules_to_save: list[str] | None = None,
    ) -> None:
        super().__init__()
        if getattr(backbone, self.wrapped_flag, False):
            raise MeptError("this backbone is already wrapped; load a fresh one for another method")
        self.spec: BackboneSpec = inspect_backbone(backbone)
        self.prompt_config = config  # the method's config (mept.model.adapter.AdapterModel)
        self.head_pooling = resolve_head_pooling(head_pooling, mean_pool_site(backbone, self.spec))
        self.head = install_head(backbone, self.spec, head, self.head_pooling)  # before the heads are named
        self.head_names = find_heads(backbone, modules_to_save)
        self.backbone_params = sum(p.numel() for n, p in backbone.named_parameters() if not self._is_head(n))
        self.net: nn.Module = self.build(backbone, config)
        self._owned = {n for n, p in self.named_parameters() if p.requires_grad}
        if self.head_pooling == "mean":
            # looked up again after build(): PEFT may have replaced the head by its modules_to_save wrapper
            hook_mean_pooling(mean_pool_site(self.base_model(), self.spec), _FORWARD_MASK.get)
        backbone._mept_wrapped = True

    # --- what subclasses define ----------------------------------------------------------

    def build(self, backbone: nn.Module, config: BaselineConfig) -> nn.Module:
        """Return the module to call (the backbone itself or a wrapper) with trainability set."""
        raise NotImplementedError

    def base_model(self) -> nn.Module:
        """The Hugging Face model inside ``net`` (where the head and pooler live)."""
        return self.net

    def save_weights(self, folder: Path) -> None:
        raise NotImplementedError

    def load_weights(self, folder: Path) -> None:
        raise NotImplementedError

    # --- forward ---------------------------------------------------------------------------

    @property
    def backbone(self) -> nn.Module:
        return self.base_model()

    num_slots = 0  # no prompt slots, no routers (mept.model.adapter.AdapterModel)
    reserved_positions = 0
    prompt_init = None
    routed = False
    routed_layers: ClassVar[list[int]] = []

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, **kwargs: Any):
        if input_ids is not None and attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        token = _FORWARD_MASK.set(attention_mask)
        try:
            given = {"input_ids": input_ids, "attention_mask": attention_mask}
            out = self.net(**{k: v for k, v in given.items() if v is not None}, **kwargs)
        finally:
            _FORWARD_MASK.reset(token)
        # the same output form as a prompted model's: no routes, no routing loss
        return out if isinstance(out, tuple) else with_routing(out, None, None)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any):
        return self.net.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    @contextmanager
    def disabled(self) -> Iterator["BaselineModel"]:
        """The frozen backbone with its native head pooling, where the baseline can be switched off."""
        raise MeptError(f"method {self.prompt_config.method!r} changes the backbone itself; it cannot be switched off")
        yield self  # pragma: no cover

    def gradient_checkpointing_enable(self) -> None:
        enable_checkpointing(self.base_model())

    # --- ownership, optimiser groups, report ---------------------------------------------------

    def _is_head(self, name: str) -> bool:
        dotted = "." + name
        return any(f".{h}." in dotted for h in self.head_names)

    def owns(self, key: str) -> bool:
        """Is ``key`` (a ``named_parameters`` name) trained and saved by this baseline?"""
        return key in self._owned

    def adapter_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if self.owns(n)}

    def param_groups(self, lr: float, head_lr: float) -> list[dict[str, Any]]:
        """The body (LoRA matrices, or every backbone weight) at ``lr``, the task heads at ``head_lr``."""
        owned = self.adapter_parameters()
        groups = [
            {"name": "body", "params": [p for n, p in owned.items() if not self._is_head(n)], "lr": lr},
            {"name": "head", "params": [p for n, p in owned.items() if self._is_head(n)], "lr": head_lr},
        ]
        return [g for g in groups if g["params"]]

    def parameter_report(self) -> dict[str, Any]:
        owned = self.adapter_parameters()
        head = sum(p.numel() for n, p in owned.items() if self._is_head(n))
        trainable = sum(p.numel() for p in owned.values())
        return {
            "method": self.prompt_config.method,
            "trainable": trainable,
            "prompt": 0,
            "router": 0,
            "adapter": trainable - head,  # LoRA matrices, or every backbone weight (full fine-tuning)
            "head": head,
            "backbone": self.backbone_params,
            "trainable_percent": 100.0 * trainable / max(self.backbone_params, 1),
            # every owned weight acts on every example: activated = stored (no router picks among them)
            "activated": trainable,
            "activated_prompt": 0,
            "activated_router": 0,
            "activated_percent": 100.0 * trainable / max(self.backbone_params, 1),
            "prompted_layers": 0,
            "activated_prompt_tokens_per_layer": 0,
            "activated_prompt_tokens": 0,
        }

    def print_trainable_parameters(self) -> None:
        r = self.parameter_report()
        print(f"trainable params: {r['trainable']:,} || backbone params: {r['backbone']:,} || "
              f"trainable%: {r['trainable_percent']:.4f}")

    # --- persistence ---------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the weights (in their own library's layout) and ``mept_config.json``.

        Written into a temporary folder beside ``path`` and moved in file by file with renames,
        ``mept_config.json`` last: a crash leaves the previous files or the new ones per file.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        try:
            self.save_weights(tmp)
            (tmp / META_NAME).write_text(json.dumps(adapter_metadata(self), indent=2))
            for file in sorted(tmp.iterdir(), key=lambda f: f.name == META_NAME):
                os.replace(file, path / file.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def load_adapter(self, path: str | os.PathLike, check_config: bool = False) -> None:
        """Load a folder :meth:`save_pretrained` wrote; ``check_config``: it must be this run's method and settings."""
        meta = read_baseline_meta(path)
        if check_config:
            check_adapter_config(self, meta, path, META_NAME)
        try:
            self.load_weights(Path(path))
        except MeptError as exc:
            raise MeptError(f"checkpoint {path} does not fit this backbone/method: {exc}") from None
        except (RuntimeError, ValueError, KeyError) as exc:
            first = exception_line(exc)
            raise MeptError(f"checkpoint {path} does not fit this backbone/method: {first}") from None

    @classmethod
    def from_pretrained(cls, backbone: nn.Module, path: str | os.PathLike) -> "BaselineModel":
        """Rebuild the baseline a folder names on ``backbone`` and load its weights."""
        meta = read_baseline_meta(path)
        model_cls = method_class(meta["method"])
        config = model_cls.config_class.from_dict(meta["config"])
        check_backbone_fits(meta, inspect_backbone(backbone), path, META_NAME)
        model = model_cls(backbone, config, head_pooling=meta.get("head_pooling"), # saved before the setting: native
                          head=meta.get("head", "native"),
                          modules_to_save=meta["modules_to_save"])
        model.load_adapter(path)
        return model.to(next(backbone.parameters()).device)


def is_baseline_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / META_NAME).exists()


def read_baseline_meta(path: str | os.PathLike) -> dict[str, Any]:
    """``mept_config.json`` of a baseline checkpoint; one clear error if absent, damaged or from a newer mept."""
    file = Path(path) / META_NAME
    if not file.exists():
        raise MeptError(f"{path} is not a mept baseline checkpoint (no {META_NAME}); did the training finish?")
    return read_metadata(file, versioned=True)  # baselines were versioned from the start


def save_tensors(state: dict[str, torch.Tensor], file: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(file))


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, with a one-line error when missing, unreadable or holding NaN/inf."""
    try:
        state = load_file(str(file))
    except FileNotFoundError:
        raise MeptError(f"{file} does not exist; did the training finish?") from None
    except Exception as exc:  # safetensors' own error class for truncated files
        detail = exception_line(exc)
        raise MeptError(f"{file} is not a readable safetensors file ({detail}); is it truncated?") from None
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise MeptError(f"{file} holds NaN or infinite values, e.g. in {broken[0]}; the run that wrote it diverged")
    return state

