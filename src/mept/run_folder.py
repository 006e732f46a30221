"""A trained run folder, read back: the model and what it can score, without the training data.

``mept train`` writes ``run_config.json`` (the settings), ``labels.json`` (the
output form, task specs and head classes) and ``best/`` (the adapter). That is
all :func:`load_trained` needs, so ``mept eval RUN --file`` and ``mept predict``
work from any directory, on any machine that has the backbone, even after the
training file is gone. :func:`read_task_file` reads a new file the way the
run's own data was read (same fields and template).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from mept.data.custom import read_examples
from mept.data.examples import Example
from mept.data.registry import TaskSpec
from mept.encode import LabelSpace
from mept.errors import MeptError, warn
from mept.identity import check_identity
from mept.registry import make_config
from mept.run_dir import hidden_run_hint, read_json_object
from mept.train import INCOMPLETE, LABELS, METRICS, RUN_CONFIG, Prepared, build_model
from mept.train_config import TrainConfig, migrate_run_config


def trained_folders(run_dir: str | Path) -> list[Path]:
    """The folders holding ``best/``: the run itself, or each ``seed-N`` of a multi-seed run (by seed)."""
    from mept.baselines.base import META_NAME
    from mept.model import WEIGHTS_NAME

    def trained(folder: Path) -> bool:  # a prompt adapter, or a baseline's folder (LoRA, full, probe)
        return (folder / "best" / WEIGHTS_NAME).exists() or (folder / "best" / META_NAME).exists()

    run = Path(run_dir)
    if not (run / RUN_CONFIG).exists():
        raise MeptError(f"{run} is not a mept run folder (no {RUN_CONFIG}); point at the --output of `mept train`"
                        + hidden_run_hint(run))
    if trained(run):
        return [run]
    seeds = [p for p in run.glob("seed-*") if trained(p) and p.name[5:].isdigit()]
    if not seeds:
        hint = hidden_run_hint(run)
        raise MeptError(f"{run} has no trained checkpoint (best/{WEIGHTS_NAME})" + (hint or "; did the training finish?"))
    return sorted(seeds, key=lambda p: int(p.name[5:]))


def trained_folder(run_dir: str | Path) -> Path:
    """One folder holding ``best/``: the run itself, or of a multi-seed run the seed that validated best.

    Which seed is used is printed, so a user who wants another points at ``RUN/seed-N``.
    """
    folders = trained_folders(run_dir)
    if len(folders) == 1:
        return folders[0]

    def score(folder: Path) -> float:
        try:
            return float(json.loads((folder / METRICS).read_text())["average"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("-inf")

    best = max(folders, key=score)
    print(f"{run_dir} holds {len(folders)} seeds; using {best.name} (best validation average); "
          f"point at {Path(run_dir) / folders[0].name} etc. for another")
    return best


def read_config(run: Path) -> TrainConfig:
    """``run_config.json`` of a trained folder, with a warning when the run never finished."""
    if (run / INCOMPLETE).exists():
        warn(f"{run} is an unfinished run ({INCOMPLETE} is present); using its best checkpoint so far")
    return TrainConfig.from_dict(migrate_run_config(read_json_object(run / RUN_CONFIG)), origin=str(run / RUN_CONFIG))


def load_trained(run_dir: str | Path, **overrides: Any) -> Prepared:
    """The best checkpoint on its backbone, with the run's encoder and task specs; no data sets loaded.

    Runs written before ``labels.json`` existed fall back to rebuilding from the training data.
    ``run_dir`` may be a multi-seed run: the seed that validated best is used.
    """
    run = trained_folder(run_dir)
    cfg = replace(read_config(run), progress=False, **{k: v for k, v in overrides.items() if v is not None})
    if not (run / LABELS).exists():
        from mept.train import prepare

        prepared = prepare(cfg)
    else:
        info = read_json_object(run / LABELS)
        if not isinstance(info.get("tasks"), dict):
            raise MeptError(f"{run / LABELS} lacks its tasks entry; the run folder is damaged")
        specs = {name: TaskSpec(name, tuple(s["verbalizer"]), s["metric"], s["kind"], s.get("description", ""))
                 for name, s in info["tasks"].items()}
        labels = LabelSpace(info["words"], info["task_words"]) if info["words"] is not None else None
        method_cfg = make_config(cfg.method, **cfg.method_settings())
        model, encoder = build_model(cfg, method_cfg, info["format"], labels, info["num_labels"])
        prepared = Prepared(cfg, model, encoder, specs, [], {}, {}, {})
        check_identity(run, prepared.model.backbone, info)
    prepared.model.load_adapter(run / "best", check_config=True)
    return prepared


def pick_task(p: Prepared, task: str | None) -> TaskSpec:
    """The task a new file belongs to: ``task`` if given, else the run's only task."""
    known = list(p.encoder.labels.task_words) if p.encoder.labels else list(p.specs)
    if task is None:
        trained = [t for t in p.config.tasks if t in p.specs] or known
        if len(trained) != 1:
            raise MeptError(f"this run knows several tasks ({', '.join(known)}); name one with --task")
        task = trained[0]
    if task not in p.specs or task not in known:
        raise MeptError(f"task {task!r} is not one this run can score; it knows {', '.join(known)}")
    return p.specs[task]


def read_task_file(p: Prepared, spec: TaskSpec, path: str, labelled: bool, **fields: str | None) -> list[Example]:
    """Examples from ``path``, rendered with the run's fields and template unless ``fields`` override them."""
    if spec.kind != "classification":
        raise MeptError(f"--file reads classification data; task {spec.name!r} is {spec.kind}")
    cfg = p.config
    chosen = {name: fields.get(name) or getattr(cfg, name)
              for name in ("text_field", "text_pair_field", "label_field", "template")}
    return read_examples(path, spec, labelled=labelled, **chosen)
