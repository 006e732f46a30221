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
from mept.errors import MeptError
from mept.registry import make_config
from mept.train import LABELS, RUN_CONFIG, Prepared, build_model
from mept.train_config import TrainConfig


def trained_folder(run_dir: str | Path) -> Path:
    """The folder holding ``best/``: the run itself, or its first seed for a multi-seed run."""
    from mept.model import WEIGHTS_NAME

    run = Path(run_dir)
    if not (run / RUN_CONFIG).exists():
        raise MeptError(f"{run} is not a mept run folder (no {RUN_CONFIG}); point at the --output of `mept train`")
    if not (run / "best" / WEIGHTS_NAME).exists():
        seeds = sorted(run.glob("seed-*"))
        if not seeds:
            raise MeptError(f"{run} has no trained checkpoint (best/{WEIGHTS_NAME}); did the training finish?")
        run = seeds[0]
    return run


def load_trained(run_dir: str | Path, **overrides: Any) -> Prepared:
    """The best checkpoint on its backbone, with the run's encoder and task specs; no data sets loaded.

    Runs written before ``labels.json`` existed fall back to rebuilding from the training data.
    """
    run = trained_folder(run_dir)
    cfg = TrainConfig.from_dict(json.loads((run / RUN_CONFIG).read_text()))
    cfg = replace(cfg, progress=False, **{k: v for k, v in overrides.items() if v is not None})
    if not (run / LABELS).exists():
        from mept.train import prepare

        prepared = prepare(cfg)
    else:
        info = json.loads((run / LABELS).read_text())
        specs = {name: TaskSpec(name, tuple(s["verbalizer"]), s["metric"], s["kind"], s.get("description", ""))
                 for name, s in info["tasks"].items()}
        labels = LabelSpace(info["words"], info["task_words"]) if info["words"] is not None else None
        method_cfg = make_config(cfg.method, **cfg.method_settings())
        model, encoder = build_model(cfg, method_cfg, info["format"], labels, info["num_labels"])
        prepared = Prepared(cfg, model, encoder, specs, [], {}, {}, {})
    prepared.model.load_adapter(run / "best")
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
