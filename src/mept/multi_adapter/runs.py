"""Run folders as adapters of one model: what each brings, and one backbone for all of them.

A run folder is read the way ``mept predict`` reads it (:mod:`mept.harness.run_folder`: the best seed,
``run_config.json``, ``labels.json``), so an adapter served beside others predicts what
``mept predict`` predicts. Everything that would make the runs unservable together -- another
backbone, another output form or head pooling, a baseline -- is refused here, before the
backbone loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mept.core.registry import is_baseline, make_config
from mept.data.encode import LabelSpace
from mept.data.registry import TaskSpec
from mept.errors import MeptError
from mept.harness.prepare_run import _quantization
from mept.harness.run_folder import LABELS, RunFolder, pick_task, read_config, read_labels, trained_folder
from mept.model.backbones import load_backbone


@dataclass
class RunAdapter:
    """What a trained run folder brings to a :class:`~mept.multi_adapter.model.MultiAdapterModel`."""

    name: str
    path: Path  # as given
    folder: Path  # the trained folder: the run, or its best seed
    config: Any  # TrainConfig
    info: dict[str, Any]  # labels.json
    task_spec: TaskSpec
    label_space: LabelSpace | None
    method_config: Any
    task: str | None = None

    @property
    def adapter_folder(self) -> Path:
        return RunFolder(self.folder).best

    @property
    def form(self) -> str:
        return self.info["format"]

    @property
    def num_labels(self) -> int | None:
        return self.info.get("num_labels")

    @property
    def slots_in_budget(self) -> int:
        """Prompt slots counted in ``--max-length`` (runs saved when it still counted them)."""
        return self.method_config.prompt_length if self.config.max_length_counts_slots else 0


def read_run(path: str | os.PathLike, name: str, task: str | None = None) -> RunAdapter:
    """The adapter a run folder holds, with its label words; ``task`` picks one task of a mixture run."""
    from types import SimpleNamespace

    folder = trained_folder(path)
    cfg = read_config(folder)
    if is_baseline(cfg.method):
        raise MeptError(f"{path} is a {cfg.method} run; mixed batches serve prompt adapters (their rows share the "
                        f"frozen backbone). Serve LoRA-family runs with PEFT's own mixed batches "
                        f"(PeftModel.load_adapter, then adapter_names=[...]), or one at a time with mept predict")
    if not (folder / LABELS).exists():
        raise MeptError(f"{folder} has no {LABELS} (written by mept since label words are saved); retrain the run "
                        f"to serve it")
    info, specs, labels = read_labels(folder)
    trained = [t for t in cfg.tasks if t in specs] or list(specs)
    if task is None and len(trained) != 1:
        raise MeptError(f"{path} was trained on several tasks ({', '.join(trained)}); an adapter serves one: "
                        f"pass task=... to load_adapter, or serve a run of one task")
    spec = pick_task(SimpleNamespace(encoder=SimpleNamespace(labels=labels), specs=specs, config=cfg), task)
    if spec.kind != "classification":
        raise MeptError(f"{path}: task {spec.name!r} is {spec.kind}; mixed batches predict classification tasks")
    return RunAdapter(name, Path(path), folder, cfg, info, spec, labels,
                      make_config(cfg.method, **cfg.method_settings()), task)


def read_runs(runs: dict[str, str | os.PathLike] | list[str | os.PathLike]) -> list[RunAdapter]:
    """Every run, named (a list: each after its folder), checked to be servable on one backbone."""
    named = runs.items() if isinstance(runs, dict) else [(Path(p).resolve().name, p) for p in runs]
    out: list[RunAdapter] = []
    for name, path in named:
        if any(r.name == name for r in out):
            raise MeptError(f"two runs are named {name!r}; name them apart with NAME=RUN")
        out.append(read_run(path, name))
    if not out:
        raise MeptError("name at least one run folder")
    first = out[0]
    for run in out[1:]:
        for what, mine, theirs in (("backbone", first.config.model, run.config.model),
                                   ("output form", first.form, run.form),
                                   ("head pooling", first.config.head_pooling, run.config.head_pooling),
                                   ("head", first.config.head, run.config.head),
                                   ("quantization", first.config.quantize, run.config.quantize)):
            if mine != theirs:
                raise MeptError(f"{run.path} was trained with {what} {theirs!r}, {first.path} with {mine!r}; runs "
                                f"served together share one backbone and output form (serve the others separately)")
    return out


def load_backbone_for(runs: list[RunAdapter]) -> tuple[Any, Any]:
    """The backbone and tokenizer the runs were trained on, loaded once."""
    first = runs[0]
    loaded = load_backbone(first.config.model, first.form, num_labels=first.num_labels, **_quantization(first.config))
    return loaded.model, loaded.processor
