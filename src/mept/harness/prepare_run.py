"""Preparing a run: a :class:`TrainConfig` becomes tasks, examples, features, label space and model.

The first step of the harness (``prepare_run`` -> ``train_loop`` -> ``run_report``, driven by
:mod:`mept.harness.train`): everything here is validated before any output folder is touched, so a bad
setting costs no run.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mept import data as mept_data
from mept.core.registry import make_config
from mept.data.encode import Encoder, Feature, LabelSpace
from mept.data.images import load_image_folder
from mept.data.registry import TaskSpec, check_splits
from mept.errors import MeptError, exception_line
from mept.harness.memory import check_fits, footprint
from mept.harness.precision import resolve_precision
from mept.harness.train_config import TrainConfig
from mept.model.adapter import AdapterModel
from mept.model.backbones import backbone_config, check_format, load_backbone, resolve
from mept.model.prompted import PromptedModel, get_model
from mept.model.states import at_prompt_scale, layer_input_states

SPLIT_SEED = 0  # data splits are fixed across training seeds, so seeds are compared on the same examples

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_determinism(on: bool) -> None:
    """``--deterministic``: deterministic kernels only (torch refuses an op that has none).

    On CPU the same seed and thread count already repeat a run bit for bit across processes
    (tested); on GPU, atomics in some backward kernels do not, and this trades speed for it.
    """
    if not on:
        return
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic GEMMs
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


@dataclass
class Prepared:
    config: TrainConfig
    model: AdapterModel
    encoder: Encoder
    specs: dict[str, TaskSpec]
    train: list[Feature]
    eval_sets: dict[str, list[Feature]]
    test_sets: dict[str, list[Feature]]
    truncated: dict[str, int]
    sizes: dict[str, int] = field(default_factory=dict)  # examples per "task/split", beside truncated


def expand_tasks(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for task in mept_data.suite_tasks(name):
            if task not in out:
                out.append(task)
    return out


def load_specs(cfg: TrainConfig) -> tuple[dict[str, TaskSpec], dict[str, dict[str, list]]]:
    """Specs of the training tasks plus any cross-task evaluation tasks, and the splits of those whose spec comes
    from their data (one's own file, an image folder). A built-in task's spec needs no data: its splits are read
    by :func:`load_registered` once every setting was checked against the specs."""
    if cfg.train_file:
        spec, splits = mept_data.load_custom(
            cfg.train_file, cfg.val_file, text_field=cfg.text_field, text_pair_field=cfg.text_pair_field,
            label_field=cfg.label_field, template=cfg.template,
            verbalizer=tuple(cfg.verbalizer) if cfg.verbalizer else None, seed=SPLIT_SEED,
            task_name=cfg.task_name, path_test=cfg.test_file,
        )
        specs, data = {spec.name: spec}, {spec.name: check_splits(spec.name, splits)}
        names = expand_tasks(cfg.eval_tasks or [])  # cross-task evaluation of a run on your own file
    elif (folder := image_folder(cfg)) is not None:
        spec, splits = load_image_folder(folder, seed=SPLIT_SEED)
        specs, data = {spec.name: spec}, {spec.name: check_splits(spec.name, splits)}
        names = []
    else:
        specs, data = {}, {}
        names = expand_tasks(cfg.tasks + (cfg.eval_tasks or []))
    for name in names:
        specs.setdefault(name, mept_data.get_task(name))
    return specs, data


def load_registered(cfg: TrainConfig, specs: dict[str, TaskSpec], data: dict[str, dict[str, list]]) -> None:
    """Read the splits of every task in ``specs`` that ``data`` lacks (the built-in ones)."""
    for name in specs:
        if name not in data:
            data[name] = mept_data.load_task(name, source=cfg.source, data_dir=cfg.data_dir, seed=SPLIT_SEED)


def image_folder(cfg: TrainConfig) -> Path | None:
    """``--dataset PATH`` that is no task name: class folders, train.csv + val.csv (VTAB-1k), or a CSV list."""
    if len(cfg.tasks) != 1 or cfg.tasks[0] in mept_data.task_names():
        return None
    path = Path(cfg.tasks[0]).expanduser()
    return path if path.exists() else None


def resolve_format(cfg: TrainConfig, specs: dict[str, TaskSpec]) -> str:
    if cfg.format != "auto":
        return cfg.format
    kinds = {s.kind for s in specs.values()}
    if kinds == {"image"}:
        return "image_cls"
    if "image" in kinds:
        raise MeptError("cannot mix image and text tasks in one run")
    import transformers

    path = resolve(cfg.model)
    try:
        model_cfg = transformers.AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise MeptError(f"cannot load model {cfg.model!r}: {exception_line(exc)}") from None
    if getattr(model_cfg, "is_encoder_decoder", False):
        return "seq2seq"
    if "generation" in kinds:
        return "causal_lm"
    return "cls"


def _subsample(items: list, n: int | None, seed: int) -> list:
    if n is None or len(items) <= n:
        return items
    idx = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in idx]


@dataclass
class Plan:
    """What a run will build, settled from its config and data files before any weight is read."""

    method_cfg: Any
    specs: dict[str, TaskSpec]
    splits: dict[str, dict[str, list]]
    form: str
    train_names: list[str]
    eval_names: list[str]
    labels: LabelSpace | None
    num_labels: int | None


def check_outputs(cfg: TrainConfig, specs: dict[str, TaskSpec],
                  eval_tasks: list[str] | None) -> tuple[str, list[str], list[str]]:
    """The output form and the train / eval task names, with the form and --metric checked against the tasks."""
    form = resolve_format(cfg, specs)
    train_names = list(specs)[:1] if cfg.train_file or image_folder(cfg) else expand_tasks(cfg.tasks)
    eval_names = expand_tasks(eval_tasks or cfg.eval_tasks or []) or train_names
    if form == "cls" and any(specs[t].kind == "generation" for t in train_names + eval_names):
        raise MeptError("generation tasks need --format causal_lm or seq2seq")
    unscored = [t for t in eval_names if specs[t].kind == "generation"]
    if cfg.metric != "task" and unscored:
        raise MeptError(f"--metric {cfg.metric} scores classification tasks, but {', '.join(unscored)} "
                        f"{'is' if len(unscored) == 1 else 'are'} not; use --metric task")
    return form, train_names, eval_names


def plan(cfg: TrainConfig, eval_tasks: list[str] | None = None) -> Plan:
    """The method's settings, the data, the output form and the label space, each checked (one error line)."""
    resolve_precision(cfg.mixed_precision)  # fp16 without CUDA is refused before anything loads
    method_cfg = make_config(cfg.method, **cfg.method_settings())  # settings are checked before any loading
    whole = replace(cfg, eval_tasks=(cfg.eval_tasks or []) + (eval_tasks or [])) if eval_tasks else cfg
    specs, splits = load_specs(whole)
    form, train_names, eval_names = check_outputs(cfg, specs, eval_tasks)
    labels = None
    if form == "cls":  # the head's classes: words of the tasks the run was configured with
        labels = LabelSpace.build([specs[t] for t in dict.fromkeys(train_names + (expand_tasks(cfg.eval_tasks) if cfg.eval_tasks else []))])
        for t in eval_names:
            if t not in labels.task_words:
                labels.add_task(specs[t])
    num_labels = len(labels.words) if labels else None
    if form == "image_cls":
        num_labels = max(len(specs[t].verbalizer) for t in train_names)
    load_registered(whole, specs, splits)  # last: a setting the tasks refuse is one error line, before any data is read
    return Plan(method_cfg, specs, splits, form, train_names, eval_names, labels, num_labels)


def check_run(cfg: TrainConfig) -> None:
    """Everything :func:`prepare` would refuse before training, without loading weights: ``mept compare`` runs it
    for every method before it writes anything, so a ``--format`` or ``--head`` a backbone cannot take is one
    error line, not a failed method inside a half-made comparison."""
    p = plan(cfg)
    check_plan(cfg.model, p.method_cfg, p.form, p.num_labels, quantize=cfg.quantize, head_pooling=cfg.head_pooling,
               head=cfg.head, modules_to_save=cfg.modules_to_save, max_length=cfg.max_length)


def prepare(cfg: TrainConfig, eval_tasks: list[str] | None = None) -> Prepared:
    """Build data, model and encoder. ``eval_tasks`` evaluates a trained run on other tasks (cross-task)."""
    seed_everything(cfg.seed)  # the prompts' random init is part of the run
    p = plan(cfg, eval_tasks)
    specs, splits, form, train_names, eval_names = p.specs, p.splits, p.form, p.train_names, p.eval_names
    model, encoder = build_model(cfg, p.method_cfg, form, p.labels, p.num_labels)
    truncated: dict[str, int] = {}
    train: list[Feature] = []
    for t in train_names:
        feats, cut = encoder.featurize(_subsample(splits[t]["train"], cfg.max_train_examples, SPLIT_SEED))
        train += feats
        truncated[f"{t}/train"] = cut
    if isinstance(model, PromptedModel) and model.method.wants_text_init:  # a baseline has no prompts to initialise
        init_from_task_text(model, train, encoder)
    if isinstance(model, PromptedModel) and model.wants_state_init:
        init_from_hidden_states(model, train, cfg.seed)
    eval_sets, test_sets = {}, {}
    for t in eval_names:
        eval_sets[t], truncated[f"{t}/validation"] = encoder.featurize(
            _subsample(splits[t]["validation"], cfg.max_eval_examples, SPLIT_SEED))
        if "test" in splits[t]:
            test_sets[t], truncated[f"{t}/test"] = encoder.featurize(
                _subsample(splits[t]["test"], cfg.max_eval_examples, SPLIT_SEED))
    sizes = {f"{t}/train": sum(f.example.task == t for f in train) for t in train_names}
    sizes.update({f"{t}/validation": len(f) for t, f in eval_sets.items()})
    sizes.update({f"{t}/test": len(f) for t, f in test_sets.items()})
    warn_truncation(truncated, sizes, cfg.max_length, cfg.max_length_counts_slots)
    check_positions(model, cfg, {"training data": train, **{f"{t}/validation": f for t, f in eval_sets.items()},
                                 **{f"{t}/test": f for t, f in test_sets.items()}})
    return Prepared(cfg, model, encoder, specs, train, eval_sets, test_sets, truncated, sizes)


def build_model(
    cfg: TrainConfig, method_cfg: Any, form: str, labels: LabelSpace | None, num_labels: int | None
) -> tuple[AdapterModel, Encoder]:
    """Backbone + prompt method + encoder for a resolved output form; no data needed (``mept predict``)."""
    check_plan(cfg.model, method_cfg, form, num_labels, quantize=cfg.quantize, head_pooling=cfg.head_pooling,
               head=cfg.head, modules_to_save=cfg.modules_to_save, max_length=cfg.max_length)
    quant = _quantization(cfg)
    backbone = load_backbone(cfg.model, form, num_labels=num_labels, **quant)
    model = get_model(backbone.model, method_cfg, head_pooling=cfg.head_pooling, head=cfg.head,
                      modules_to_save=cfg.modules_to_save)
    limit = model.spec.max_positions
    counted = "prompt slots included" if cfg.max_length_counts_slots else "text tokens"
    if form != "image_cls" and limit is not None and cfg.max_length > limit:
        raise MeptError(f"--max-length {cfg.max_length} exceeds {cfg.model}'s {limit} positions ({counted}); "
                        f"use --max-length {limit} or less")
    if cfg.max_length_counts_slots and cfg.max_length <= model.num_slots:
        raise MeptError(f"--max-length {cfg.max_length} leaves no room for text after {model.num_slots} prompt slots")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    # --max-length is the text budget, the same for every method; runs saved before that counted the slots in it
    slots_in_budget = model.num_slots if cfg.max_length_counts_slots else 0
    return model, Encoder(form, backbone.processor, slots_in_budget, cfg.max_length, labels)


def check_plan(model_name: str, method_cfg: Any, form: str, num_labels: int | None, *, quantize: str | None = None,
               max_length: int | None = None, **model_kwargs: Any) -> None:
    """What can be refused before any weight is read or allocated, from the backbone's config alone:
    a ``--format`` it cannot take, more prompt slots than it has positions, and a model that does
    not fit the memory available (:func:`mept.harness.memory.footprint`, counted on the meta device).
    ``mept train``, ``eval``, ``predict``, ``analyze`` and ``params`` all build their model after it."""
    config = backbone_config(model_name)
    check_format(model_name, config, form)
    fp = footprint(config, form, method_cfg, num_labels, **model_kwargs)
    limit = fp.max_positions
    if form != "image_cls" and limit is not None and fp.slots >= limit:
        keep = f"; --prompt-length {limit - max_length} or less keeps --max-length {max_length}" \
            if max_length is not None and limit > max_length else ""
        raise MeptError(f"{fp.slots} prompt slots leave no room for text in {model_name}'s {limit} positions (the "
                        f"prompt and the text share them); use fewer prompt tokens{keep}")
    check_fits(fp, f"{getattr(method_cfg, 'method', 'the method')} on {model_name}", quantize,
               fix="use fewer experts, prompt tokens or classes, or a smaller --model")


def check_positions(model: AdapterModel, cfg: TrainConfig, features: dict[str, list[Feature]]) -> None:
    """Text tokens + prompt slots must fit the model's positions: one error before training, not mid-run.

    ``--max-length`` counts text only, so with long texts a method with many slots (P-Tuning v2's
    100 per layer) can need more positions than the model has; it is refused here, naming the
    ``--max-length`` that fits, instead of silently getting less text than the other methods.
    """
    limit = model.spec.max_positions
    reserved = model.reserved_positions
    if limit is None or reserved == 0 or model.spec.modality != "text":
        return
    causal = model.spec.task_type == "causal_lm"  # a causal LM reads its target in the same positions
    longest, where = max(((len(f.input_ids) + (len(f.target_ids) if causal else 0), name) for name, feats in features.items()
                          for f in feats), default=(0, ""))
    if longest + reserved > limit:
        room = limit - reserved  # >= 1: check_plan refused slots that fill every position
        raise MeptError(
            f"{where} has inputs of {longest} text tokens (--max-length {cfg.max_length}); with "
            f"{reserved} prompt positions they need {longest + reserved} positions, but {cfg.model} has "
            f"{limit}; use --max-length {room} or fewer prompt tokens"
        )


def warn_truncation(truncated: dict[str, int], sizes: dict[str, int], max_length: int, counts_slots: bool = False) -> None:
    """Say up front, before any training, how much of each split ``--max-length`` cuts."""
    cut = [(k, n, sizes.get(k, 0)) for k, n in truncated.items() if n]
    if not cut:
        return
    parts = ", ".join(f"{k} {n} of {total} ({100 * n / max(total, 1):.0f}%)" for k, n, total in cut)
    counted = "prompt slots included" if counts_slots else "text tokens"
    print(f"warning: longer than --max-length {max_length} ({counted}), truncated: {parts}", file=sys.stderr)


@torch.no_grad()
def init_from_task_text(model: PromptedModel, train: list[Feature], encoder: Encoder | None = None,
                        max_tokens: int = 4096) -> None:
    """A method's initialisation from token embeddings of text (PT-MoE's SVD, ``init="task_text"``).

    The text is the config's ``init_from`` when it gives one (``init="task_text"``), else a sample of
    the training text.
    """
    text = model.prompt_config.init_from if model.prompt_config.init == "task_text" else None
    if text and encoder is not None and encoder.processor is not None:
        ids = list(encoder.processor(text, add_special_tokens=False)["input_ids"])[:max_tokens]
    else:
        ids = [i for f in train[:256] for i in f.input_ids][:max_tokens]
    if not ids:
        raise MeptError(f"{model.prompt_config.method}'s initialisation from text needs text training data")
    embed = model.backbone.get_input_embeddings()
    model.method.init_from_embeddings(embed(torch.tensor(ids, device=embed.weight.device)))


def init_from_hidden_states(model: PromptedModel, train: list[Feature], seed: int) -> None:
    """``init="hidden_states"``: each prompted layer's prompt rows start as the frozen backbone's hidden states
    at that layer's input over the training text (:mod:`mept.model.states`), drawn with the run's seed."""
    if model.spec.modality != "text":
        raise MeptError("init='hidden_states' needs a text backbone; use xavier_normal or vpt_uniform for images")
    layers = model.backbone.get_submodule(model.spec.layers_path)
    with model.disabled():
        states = layer_input_states(model.backbone, layers, model.method.layer_ids, [f.input_ids for f in train],
                                    model.slot_token_id, seed)
    if model.prompt_config.state_init_scale == "xavier":
        states = at_prompt_scale(states, model.prompt_config.prompt_length)
    model.method.init_from_states(states, torch.Generator().manual_seed(seed))


def _quantization(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.quantize is None:
        return {}
    if not torch.cuda.is_available():
        raise MeptError("--quantize needs a CUDA GPU (bitsandbytes)")
    from transformers import BitsAndBytesConfig

    if cfg.quantize == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)}
