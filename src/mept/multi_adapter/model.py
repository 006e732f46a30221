"""``MultiAdapterModel``: one frozen backbone, many prompt adapters, batches whose rows name their adapter.

PEFT's convention for mixed LoRA batches, for prompt adapters (which PEFT cannot mix: its issue
#759)::

    model = MultiAdapterModel.from_runs({"sentiment": "runs/sst", "topic": "runs/news"})
    out = model(input_ids=..., attention_mask=..., adapter_names=["sentiment", "topic", ...])
    model.generate(input_ids=..., adapter_names=[...])

Each adapter brings its own prompts (and routers) and its own task head; the backbone and its
weights are shared. One forward serves every row whose adapter has the same slot layout (prompt
length and prompted layers, :class:`~mept.multi_adapter.mix.SlotLayout`); rows of other layouts
run as one forward per layout within the same call. A row's result is what its adapter alone
computes (``tests/test_multi_adapter.py``: every method, on an encoder and a decoder).

Inference only: the forward runs without gradients and the adapters stay in eval mode. What one
forward computes travels in its :class:`~mept.multi_adapter.mix.AdapterMix` and its output
(``out.routes``: adapter name -> :class:`~mept.multi_adapter.mix.AdapterRoutes`), never on the model.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from mept.baselines.base import is_baseline_checkpoint
from mept.core.adapter_format import (
    WEIGHTS_NAME,
    check_adapter_config,
    check_adapter_state,
    check_backbone_fits,
    read_adapter_config,
    read_adapter_weights,
)
from mept.core.registry import method_class
from mept.core.routed_output import with_routing
from mept.data.encode import Encoder, LabelSpace
from mept.data.registry import TaskSpec
from mept.errors import MeptError, exception_line
from mept.files.file_limits import check_file_size
from mept.harness.identity import check_identity
from mept.harness.run_folder import RunFolder
from mept.inject.heads import (
    find_heads,
    hook_mean_pooling,
    install_head,
    mean_pool_site,
    resolve_head_pooling,
    restore_head,
)
from mept.inject.slots import SlotInjector, current_forward
from mept.inject.spec import BackboneSpec, check_length, inspect_backbone, sink_columns
from mept.methods.base import PromptMethod
from mept.model.backbones import _load_processor, resolve
from mept.multi_adapter.mix import Adapter, AdapterMix, AdapterRoutes, RowHeads, SlotLayout
from mept.multi_adapter.predict import featurize_rows, input_fields, predict_features
from mept.multi_adapter.runs import load_backbone_for, read_run, read_runs

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
DEFAULT_MAX_LENGTH = 384  # TrainConfig's default text budget, for adapter folders that carry none


class MultiAdapterModel(nn.Module):
    def __init__(self, backbone: nn.Module, processor: Any = None, *, modules_to_save: list[str] | None = None) -> None:
        super().__init__()
        if getattr(backbone, "_mept_wrapped", False):
            raise MeptError("this backbone is already wrapped (PromptedModel or MultiAdapterModel); load a fresh one")
        self.spec: BackboneSpec = inspect_backbone(backbone)
        if self.spec.modality != "text":
            raise MeptError("mixed-adapter batches serve text backbones; image backbones run one adapter at a time "
                            "(mept.load)")
        self.backbone = backbone.requires_grad_(False).eval()
        self.processor = processor
        self.head_names = find_heads(backbone, modules_to_save)
        self._native_heads = {name: backbone.get_submodule(name) for name in self.head_names}
        for name in self.head_names:
            backbone.set_submodule(name, RowHeads(name))
        self.methods = nn.ModuleDict()
        self.adapters: dict[str, Adapter] = {}
        self.injectors: dict[SlotLayout, SlotInjector] = {}
        self.head_pooling: str | None = None  # the first adapter's; every other must match
        self.head: str | None = None  # likewise (mept.inject.heads.install_head)
        self._pool_handle = None
        self.slot_token_id = getattr(backbone.config, "pad_token_id", None) or 0
        backbone._mept_wrapped = True

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def train(self, mode: bool = True) -> "MultiAdapterModel":
        """Inference only: training mode is refused (routers would add noise); ``eval()`` is what it allows."""
        if mode:
            raise MeptError("a MultiAdapterModel serves trained adapters; train each adapter alone "
                            "(mept train, or mept.get_model)")
        return super().train(False)

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def from_runs(cls, runs: dict[str, str | os.PathLike] | list[str | os.PathLike]) -> "MultiAdapterModel":
        """The backbone the runs were trained on, loaded once, with every run's adapter under its name.

        ``runs``: name -> run folder, or a list of run folders (each named after its folder). Runs on
        different backbones, of different output forms or head poolings are refused before the
        backbone loads.
        """
        named = read_runs(runs)
        backbone, processor = load_backbone_for(named)
        model = cls(backbone, processor, modules_to_save=named[0].config.modules_to_save)
        for run in named:
            model.load_adapter(run.path, run.name, task=run.task)
        return model

    def load_adapter(self, path: str | os.PathLike, adapter_name: str | None = None, *, task: str | None = None,
                     labels: list[str] | None = None, max_length: int = DEFAULT_MAX_LENGTH) -> Adapter:
        """Load a run folder or an adapter folder (``save_pretrained``'s) under ``adapter_name``.

        A run folder brings its label words, text budget, fields and template (``task``: which of
        a mixture run's tasks); an adapter folder serves ``forward`` / ``generate``, and ``predict``
        too when given its label words (``labels``, in label-id order) and a ``max_length``.
        """
        path = Path(path)
        name = adapter_name or path.resolve().name
        self._check_name(name)
        if RunFolder(path).config.exists():
            run = read_run(path, name, task)
            return self._add(name, run.adapter_folder, run=run)
        return self._add(name, path, labels=labels, max_length=max_length)

    def _check_name(self, name: str) -> None:
        if not NAME.match(name):
            raise MeptError(f"adapter name {name!r}: use letters, digits, '_' and '-' (name it with NAME=RUN)")
        if name in self.adapters:
            raise MeptError(f"an adapter named {name!r} is already loaded; give each a distinct name (NAME=RUN)")

    def _add(self, name: str, folder: Path, run: Any = None, labels: list[str] | None = None,
             max_length: int = DEFAULT_MAX_LENGTH) -> Adapter:
        if is_baseline_checkpoint(folder):
            raise MeptError(f"{folder} is a LoRA-family or full fine-tuning checkpoint; mixed batches serve prompt "
                            f"adapters (their rows share the frozen backbone). Serve LoRA adapters with PEFT's own "
                            f"mixed batches (PeftModel.load_adapter, then adapter_names=[...])")
        meta = read_adapter_config(folder)
        cls = method_class(meta["method"])
        if not issubclass(cls, PromptMethod):
            raise MeptError(f"{folder} holds a {meta['method']} checkpoint, not a prompt adapter")
        config = cls.config_class.from_dict(meta["config"])
        self._check_fits(meta, folder)
        if run is not None:  # the run's own settings must be the adapter's (an edited or foreign best/ is refused)
            check_adapter_config(SimpleNamespace(spec=self.spec, prompt_config=run.method_config), meta, folder)
            check_identity(run.folder, self.backbone, run.info)
        method: PromptMethod = cls(config, self.spec.hidden_size, self.spec.num_layers)
        state = self._read_weights(folder, method)
        pooling, kind = self._head_of(meta, folder)
        num_labels = run.num_labels if run is not None else self._head_width(state, kind)
        heads = self._build_heads(state, num_labels, kind)
        expected = {**{f"method.{k}": v for k, v in method.state_dict().items()},
                    **{f"head.{h}.{k}": v for h, m in heads.items() for k, v in m.state_dict().items()}}
        try:
            check_adapter_state(expected, state, heads_saved=True)
            method.load_state_dict({k[len("method."):]: v for k, v in state.items() if k.startswith("method.")})
            for head, module in heads.items():
                prefix = f"head.{head}."
                module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        except (MeptError, RuntimeError) as exc:
            first = exception_line(exc)
            raise MeptError(f"checkpoint {folder} does not fit this backbone/method: {first}") from None
        self._set_head(pooling, kind)
        adapter = Adapter(name, method.to(self.device).eval(), config,
                          SlotLayout(method.num_slots, tuple(method.layer_ids), sink_columns(self.spec, config.attention_sink)),
                          folder, num_labels)
        if run is not None:
            adapter.task, adapter.run_config = run.task_spec, run.config
            adapter.encoder = Encoder(run.form, self._processor(run.config.model), run.slots_in_budget,
                                      run.config.max_length, run.label_space)
        elif labels is not None:
            adapter.task, adapter.encoder = self._labelled(name, labels, num_labels, max_length)
        self.methods[name] = adapter.method
        for head, module in heads.items():
            self.backbone.get_submodule(head).heads[name] = module.to(self.device).eval()
        if adapter.layout not in self.injectors:
            layers = self.backbone.get_submodule(self.spec.layers_path)
            self.injectors[adapter.layout] = SlotInjector(adapter.layout, layers, self.spec.slot_offset, adapter.layout.sink)
        self.adapters[name] = adapter
        return adapter

    def _check_fits(self, meta: dict[str, Any], folder: Path) -> None:
        """Same backbone (width, depth, architecture) and the same output form as this model's."""
        check_backbone_fits(meta, self.spec, folder)
        saved = meta["backbone"]
        if saved.get("model_type") not in (None, self.spec.model_type):
            raise MeptError(f"{folder} was trained on a {saved['model_type']} backbone "
                            f"({saved.get('name_or_path') or '?'}), this model is {self.spec.model_type}; "
                            f"serve it with its own backbone")
        form = saved.get("task_type")
        if form not in (None, self.spec.task_type.value):
            raise MeptError(f"{folder} outputs {form}, the adapters loaded here {self.spec.task_type.value}; "
                            f"adapters of one model share one output form (serve the others separately)")
        if sorted(meta.get("modules_to_save") or []) != sorted(self.head_names):
            raise MeptError(f"{folder} saved the task heads {meta.get('modules_to_save') or 'none'}, this backbone has "
                            f"{self.head_names or 'none'}; load it onto the backbone class it was trained with")

    def _read_weights(self, folder: Path, method: PromptMethod) -> dict[str, torch.Tensor]:
        # the bytes of the method's tensors, and room for any head (a head is at most a few layers of d x d)
        expected = sum(v.numel() * v.element_size() for v in method.state_dict().values())
        head = 8 * self.spec.hidden_size * self.spec.hidden_size * 4
        check_file_size(folder / WEIGHTS_NAME, 2 * (expected + head) + (1 << 20), "this adapter",
                        "it is not a prompt adapter of this backbone (or is damaged)")
        return read_adapter_weights(folder)

    def _head_shell(self, num_labels: int, head: str) -> nn.Module:
        """The backbone's class with ``num_labels`` classes and the head kind ``head``, on the meta device: where
        each adapter's heads come from."""
        config = copy.deepcopy(self.backbone.config)
        config.num_labels = num_labels
        with torch.device("meta"):
            shell = type(self.backbone)(config)
        install_head(shell, self.spec, head, "mean")  # only the shell's task heads are used, never its pooler
        return shell

    def _head_width(self, state: dict[str, torch.Tensor], head: str) -> int | None:
        """An adapter folder's class count, read off its saved head tensors (the dimension that is not the backbone's)."""
        if not self.head_names:
            return None
        default = int(self.backbone.config.num_labels)
        shell = self._head_shell(default, head)
        for head in self.head_names:
            for key, want in shell.get_submodule(head).state_dict().items():
                got = state.get(f"head.{head}.{key}")
                if got is not None and got.dim() == want.dim() and tuple(got.shape) != tuple(want.shape):
                    differ = [i for i in range(got.dim()) if got.shape[i] != want.shape[i]]
                    if len(differ) == 1 and want.shape[differ[0]] == default:
                        return int(got.shape[differ[0]])
        return default

    def _build_heads(self, state: dict[str, torch.Tensor], num_labels: int | None, head: str) -> dict[str, nn.Module]:
        if not self.head_names:
            return {}
        if not any(k.startswith("head.") for k in state):
            raise MeptError("the adapter has no task head; a classification backbone needs each adapter's own head")
        shell = self._head_shell(num_labels or int(self.backbone.config.num_labels), head)
        dtype = next(self._native_heads[self.head_names[0]].parameters()).dtype
        return {h: shell.get_submodule(h).to_empty(device="cpu").to(dtype) for h in self.head_names}

    def _head_of(self, meta: dict[str, Any], folder: Path) -> tuple[str, str]:
        """The head pooling and head kind an adapter folder was trained with, checked against the adapters
        loaded here (the pooling site and a BERT-like [CLS] pooler are the backbone's, shared by every row)."""
        pooling = resolve_head_pooling(meta.get("head_pooling"), mean_pool_site(self.backbone, self.spec))
        head = meta.get("head") or "native"  # a file without it predates the setting
        for what, theirs, mine in (("head pooling", pooling, self.head_pooling), ("head", head, self.head)):
            if mine is not None and theirs != mine:
                raise MeptError(f"{folder} was trained with {what} {theirs!r}, the adapters loaded here with "
                                f"{mine!r}; serve them separately")
        return pooling, head

    def _set_head(self, pooling: str, head: str) -> None:
        """The first adapter's head pooling and kind become the backbone's (:meth:`_head_of` checks the others')."""
        if self.head_pooling is not None:
            return
        self.head_pooling, self.head = pooling, head
        site = mean_pool_site(self.backbone, self.spec)
        if site is not None and site[0] == "pooler":  # a linear head drops the shared [CLS] pooler's dense + tanh
            install_head(self.backbone, self.spec, head, pooling)
            site = mean_pool_site(self.backbone, self.spec)
        if pooling == "mean":
            self._pool_handle = hook_mean_pooling(site, self._pool_mask)

    def _pool_mask(self) -> torch.Tensor | None:
        state = current_forward()
        if state is None or state.injector not in self.injectors.values():
            return None
        return state.pool_mask

    def _processor(self, model_name: str) -> Any:
        if self.processor is None:
            self.processor = _load_processor(resolve(model_name), self.spec.task_type.value)
        return self.processor

    def _labelled(self, name: str, labels: list[str], num_labels: int | None,
                  max_length: int) -> tuple[TaskSpec, Encoder]:
        if self.processor is None:
            raise MeptError("predicting with an adapter folder needs the tokenizer: MultiAdapterModel(backbone, tokenizer)")
        words = [str(w) for w in labels]
        if num_labels is not None and len(words) != num_labels:
            raise MeptError(f"adapter {name!r}: {len(words)} label words for a head of {num_labels} classes")
        spec = TaskSpec(name, tuple(words), "accuracy", "classification")
        space = LabelSpace(words, {name: list(range(len(words)))}) if self.spec.task_type == "cls" else None
        return spec, Encoder(self.spec.task_type.value, self.processor, 0, max_length, space)

    def unload(self) -> nn.Module:
        """Remove every adapter's hooks and heads and hand back the bare backbone with its own heads."""
        for injector in self.injectors.values():
            injector.remove()
        if self._pool_handle is not None:
            self._pool_handle.remove()
        for name, module in self._native_heads.items():
            self.backbone.set_submodule(name, module)
        restore_head(self.backbone)  # a [CLS] pooler a linear head replaced
        self.backbone._mept_wrapped = False
        self.injectors, self.adapters = {}, {}
        return self.backbone

    # --- forward ---------------------------------------------------------------------------

    def row_adapters(self, adapter_names: list[str] | str | None, batch_size: int) -> list[Adapter]:
        """The adapter of every row: ``adapter_names`` has one name per row (or one name for all)."""
        if adapter_names is None:
            raise MeptError("pass adapter_names=[...]: one loaded adapter's name per row")
        names = [adapter_names] * batch_size if isinstance(adapter_names, str) else list(adapter_names)
        if len(names) != batch_size:
            raise MeptError(f"adapter_names has {len(names)} names for a batch of {batch_size} rows")
        unknown = sorted({n for n in names if n not in self.adapters})
        if unknown:
            raise MeptError(f"unknown adapter(s) {', '.join(map(repr, unknown))}; loaded: {', '.join(self.adapters)}")
        return [self.adapters[n] for n in names]

    @staticmethod
    def by_layout(adapters: list[Adapter]) -> dict[SlotLayout, list[int]]:
        groups: dict[SlotLayout, list[int]] = {}
        for i, adapter in enumerate(adapters):
            groups.setdefault(adapter.layout, []).append(i)
        return groups

    def _run(self, layout: SlotLayout, adapters: list[Adapter], call: Any, input_ids: torch.Tensor,
             attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
             labels: torch.Tensor | None = None) -> tuple[Any, dict[str, AdapterRoutes]]:
        """``call(slotted_inputs)`` on the backbone with the rows' prompts injected; returns its output and routes."""
        injector = self.injectors[layout]
        check_length(self.spec, input_ids.shape[1], injector.width)
        mix = AdapterMix.of(layout, adapters, input_ids.device)
        slotted = injector.slotted_inputs(input_ids, attention_mask, self.slot_token_id, self.spec.task_type,
                                          token_type_ids, labels)
        with injector.forward(mix, attention_mask):
            out = call(slotted)
        return out, mix.routing()

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                adapter_names: list[str] | str | None = None, token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any):
        """The backbone's output for a batch whose row i uses ``adapter_names[i]``, slots stripped as
        :class:`~mept.model.prompted.PromptedModel` strips them, ``out.routes`` by adapter.

        Classification logits are (B, C) with C the widest head's classes (-inf past a row's own).
        Rows of several slot layouts run as one forward each; the output then carries ``logits``
        and ``routes`` only.
        """
        adapters = self.row_adapters(adapter_names, input_ids.shape[0])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                  "labels": labels}
        groups = self.by_layout(adapters)
        results = []
        for layout, rows in groups.items():
            index = torch.tensor(rows, device=input_ids.device)
            sub = inputs if len(groups) == 1 else {k: None if v is None else v.index_select(0, index)
                                                   for k, v in inputs.items()}
            out, routes = self._run(layout, [adapters[i] for i in rows],
                                    lambda slotted: self.backbone(**slotted, return_dict=True, **kwargs), **sub)
            self.injectors[layout].strip_outputs(out, self.spec.task_type)
            results.append((index, out, routes))
        if len(results) == 1:
            _, out, routes = results[0]
            return with_routing(out, routes or None, None)
        return self._merge(results, input_ids.shape[0], "logits", float("-inf"))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 adapter_names: list[str] | str | None = None, **kwargs: Any):
        """Generate with each row's prompts (routed once from the prompt text); sequences without slots.

        With several slot layouts in the batch each layout generates apart and the sequences are
        right-padded to one length; the output then carries ``sequences`` and ``routes`` only.
        """
        adapters = self.row_adapters(adapter_names, input_ids.shape[0])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        groups = self.by_layout(adapters)
        results = []
        for layout, rows in groups.items():
            index = torch.tensor(rows, device=input_ids.device)
            ids, mask = ((input_ids, attention_mask) if len(groups) == 1
                         else (input_ids.index_select(0, index), attention_mask.index_select(0, index)))
            out, routes = self._run(layout, [adapters[i] for i in rows],
                                    lambda slotted: self.backbone.generate(**slotted, **kwargs), ids, mask)
            results.append((index, self.injectors[layout].strip_generated(out, self.spec.task_type), routes))
        if len(results) == 1:
            _, out, routes = results[0]
            return out if isinstance(out, torch.Tensor) else with_routing(out, routes or None, None)
        pad = kwargs.get("pad_token_id", self.backbone.generation_config.pad_token_id)
        pad = self.slot_token_id if pad is None else pad
        if isinstance(results[0][1], torch.Tensor):
            return self._merge([(i, SimpleNamespace(sequences=o), r) for i, o, r in results],
                               input_ids.shape[0], "sequences", pad, tensor=True)
        return self._merge(results, input_ids.shape[0], "sequences", pad)

    @staticmethod
    def _merge(results: list[tuple[torch.Tensor, Any, dict[str, AdapterRoutes]]], batch_size: int, key: str,
               fill: float, tensor: bool = False) -> Any:
        """One output from per-layout outputs: ``key`` scattered back to batch order (padded with ``fill``
        in its last dimension), the routes' rows mapped back to the batch."""
        values = [(index, getattr(out, key)) for index, out, _ in results]
        first = values[0][1]
        width = max(v.shape[-1] for _, v in values)
        merged = first.new_full((batch_size, *first.shape[1:-1], width), fill)
        routes: dict[str, AdapterRoutes] = {}
        for (index, value), (_, _, own) in zip(values, results):
            merged[index, ..., : value.shape[-1]] = value
            routes.update({name: AdapterRoutes(index[r.rows], r.routes) for name, r in own.items()})
        if tensor:
            return merged
        kind = type(results[0][1])
        return with_routing(kind(**{key: merged}), routes or None, None)

    def predict(self, rows: list[str | dict[str, Any]], adapter_names: list[str] | str,
                batch_size: int = 32) -> list[Any]:
        """``mept predict``'s answer for each row (text, or an object with the run's fields) by its adapter."""
        adapters = self.row_adapters(adapter_names, len(rows))
        features = []
        for adapter, row in zip(adapters, rows):
            feats, _ = featurize_rows(adapter, [row])
            features.append((adapter.name, feats[0]))
        return predict_features(self, features, batch_size)

    def describe(self) -> list[dict[str, Any]]:
        """What each adapter is, as ``GET /adapters`` of ``mept serve`` lists it."""
        return [{
            "name": a.name,
            "method": a.config.method,
            "labels": list(a.task.verbalizer) if a.task else None,
            "output_form": self.spec.task_type.value,
            "fields": input_fields(a) if a.task else None,
            "prompted_layers": [i + 1 for i in a.method.layer_ids],
            "experts_reported_for_layers": a.layers,
            "prompt_length": a.layout.num_slots,
            "max_length": a.encoder.text_budget if a.encoder else None,
            "source": str(a.path),
        } for a in self.adapters.values()]


__all__ = ["MultiAdapterModel", "Adapter"]
