"""The run folder: what ``mept train`` writes there, who may write it, and how a trained run is read back.

A run folder holds ``run_config.json`` (:data:`RUN_CONFIG`, the settings), ``labels.json``
(:data:`LABELS`: the output form, task specs and head classes), ``metrics.json`` (:data:`METRICS`),
``best/`` (the adapter) and, while a run is unfinished, ``.incomplete`` (:data:`INCOMPLETE`).

Writing it, three guarantees, each a function here so ``train`` only calls them:

- :data:`RUN` -- what a run folder holds, for the one ownership check
  (:func:`mept.files.ownership.claim_output`): ``--output`` that is a file, sits in a read-only folder,
  or holds anything but a mept run is refused before a model is loaded, not after.
- :func:`output_lock` -- a lock file beside the folder (``.NAME.lock``) holds the writer's pid and
  host; a second writer is refused, a lock whose process is gone is taken over.
- :func:`move_aside` / :func:`settle` -- ``--overwrite`` first moves the old run to
  ``.NAME.replaced`` beside the folder; the old run is deleted only once the new one has written
  something resumable (a checkpoint or ``metrics.json``), and put back if the new one fails
  before that. A run killed in between is put back by the next run that takes the lock.

Reading it back: :func:`load_trained` is the one way to rebuild a trained run (the model on its
backbone, with the run's encoder and task specs, optionally its data sets), so ``mept eval``,
``mept predict`` and ``mept analyze`` work from any directory, on any machine that has the
backbone, even after the training file is gone. :func:`read_task_file` reads a new file the way
the run's own data was read (same fields and template).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mept.baselines.base import META_NAME, is_baseline_checkpoint, read_baseline_meta
from mept.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME, read_adapter_config
from mept.core.registry import make_config
from mept.data.custom import FILE_FIELDS, read_examples
from mept.data.encode import LabelSpace
from mept.data.examples import Example
from mept.data.registry import TaskSpec
from mept.errors import MeptError, warn
from mept.files.atomic_file import atomic_write
from mept.files.file_limits import read_json_object
from mept.files.ownership import OutputKind, claim_output
from mept.files.run_names import (
    ANALYSIS_DIR,
    BEST,
    CHECKPOINT,
    EVAL_PREFIX,
    IDENTITY,
    INCOMPLETE,
    LABELS,
    LR_PREFIX,
    METRICS,
    RUN_CONFIG,
    SEARCH_PREFIX,
    SEED_PREFIX,
)
from mept.harness.identity import check_identity
from mept.harness.prepare_run import Prepared, build_model, prepare
from mept.harness.train_config import DATA_PATHS, TrainConfig, data_path, migrate_run_config
from mept.model.backbones import backbone_config

# Settings a --resume may change: where the run lives and how it reports, never what it trains.
RESUME_MAY_CHANGE = ("output", "progress", "overwrite", "report_to")

LOCK_SUFFIX = ".lock"
REPLACED_SUFFIX = ".replaced"


def sibling(out: Path, suffix: str) -> Path:
    """``runs/latest`` -> ``runs/.latest<suffix>``: bookkeeping beside the folder, not inside it."""
    return out.parent / f".{out.name}{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _live(holder: dict[str, Any] | None) -> bool:
    """Is the process that wrote this lock still running (one on another host is taken to be)?"""
    if holder is None:
        return False
    try:
        pid = int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return False
    return holder.get("host") != socket.gethostname() or _pid_alive(pid)


def writer_of(out: Path) -> dict[str, Any] | None:
    """The live process holding the lock of ``out`` (``{"pid", "host"}``), or None when no run writes there."""
    holder = _read_lock(sibling(Path(out), LOCK_SUFFIX))
    return holder if _live(holder) else None


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``out`` while a run writes there; refuse a live second writer."""
    out = Path(out)
    made = missing_folders(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = sibling(out, LOCK_SUFFIX)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder and holder.get("host") == me["host"] and holder.get("pid") == me["pid"]:
                yield  # re-entered by the same process (a seed of a multi-seed run): already ours
                return
            if _live(holder):
                raise MeptError(
                    f"output folder {out} is in use by another mept run (pid {holder['pid']} on {holder['host']}); "
                    f"wait for it to end or pick another --output (if that process is gone, delete {lock})"
                )
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise MeptError(f"could not take the lock {lock}; delete it if no mept run is writing to {out}")
    try:
        recover(out)
        yield
    finally:
        if _read_lock(lock) == me:
            lock.unlink(missing_ok=True)
        remove_empty(made)  # a run refused before it wrote anything leaves no empty runs/ behind


def missing_folders(path: Path) -> list[Path]:
    """The folders of ``path`` (itself included) that do not exist yet, deepest first."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders this process created (deepest first) while they are still empty: never anything else."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (the run wrote there), or gone: either way it stays as it is
            return


def has_progress(out: Path) -> bool:
    """Does ``out`` hold something worth keeping: a finished run or a resumable checkpoint?"""
    out = Path(out)
    if not out.is_dir():
        return False
    if (out / METRICS).exists():
        return True
    return any(out.glob(f"{CHECKPOINT}*/trainer_state.json")) or any(out.glob(f"*/{CHECKPOINT}*/trainer_state.json"))


# What ``mept train`` / ``eval`` / ``analyze`` write inside a run folder: --overwrite deletes nothing else.
RUN_ENTRIES = (RUN_CONFIG, LABELS, METRICS, IDENTITY, INCOMPLETE, BEST,
               f"{BEST}.tmp", CHECKPOINT, f"{CHECKPOINT}.tmp", f"{CHECKPOINT}.old", ANALYSIS_DIR,
               "tensorboard", "wandb")  # --report-to's folders (mept.harness.tracking)
RUN_ENTRY_PREFIXES = (SEED_PREFIX, LR_PREFIX, SEARCH_PREFIX, EVAL_PREFIX)


# What a run folder is to the one ownership check (mept.files.ownership.claim_output): ``--overwrite`` replaces
# a folder holding run_config.json and only these entries, and nothing else.
RUN = OutputKind("a mept run", marker=RUN_CONFIG, entries=lambda: frozenset(RUN_ENTRIES), prefixes=RUN_ENTRY_PREFIXES)


def move_aside(out: Path) -> None:
    """``--overwrite``: move the old output to ``.NAME.replaced`` (kept until :func:`settle`).

    Only after :func:`mept.files.ownership.claim_output` said the folder is ours to replace.
    """
    out = Path(out)
    backup = sibling(out, REPLACED_SUFFIX)
    if backup.exists():
        if has_progress(out):  # the folder is newer and real: the older backup goes
            shutil.rmtree(backup)
        else:  # the folder is the empty shell of a run that never got going: keep the backup
            shutil.rmtree(out)
            return
    out.rename(backup)


def settle(out: Path, succeeded: bool) -> None:
    """After a run into ``out``: drop the moved-aside old run if the new one left something, else restore it."""
    out = Path(out)
    backup = sibling(out, REPLACED_SUFFIX)
    if not backup.exists():
        return
    if succeeded or has_progress(out):
        shutil.rmtree(backup)
        return
    _restore(out, backup, f"the new run stopped before writing anything resumable; the previous run in {out} was kept")


def recover(out: Path) -> None:
    """Put back a run that an ``--overwrite`` killed before its first checkpoint had moved aside."""
    backup = sibling(Path(out), REPLACED_SUFFIX)
    if backup.exists() and not has_progress(out):
        _restore(out, backup, f"restored the run in {out} that an interrupted --overwrite had moved aside")


def settings_source(out: Path) -> Path:
    """The folder whose ``run_config.json`` a ``--resume`` into ``out`` continues.

    When an interrupted ``--overwrite`` left the old run in ``.NAME.replaced`` and ``out`` holds
    only the new run's shell, taking the lock will put the old run back (:func:`recover`); its
    settings, not the shell's, are the ones to compare flags with.
    """
    backup = sibling(Path(out), REPLACED_SUFFIX)
    return backup if backup.is_dir() and not has_progress(out) else Path(out)


@dataclass(frozen=True)
class RunFolder:
    """One run folder: the names of what it holds, claiming it, and its settings (written, compared on --resume).

    ``train``, ``compare``, ``eval_run``, ``run_report`` and the CLI ask it for paths; the file
    names are declared once, in :mod:`mept.files.run_names`, and handed out as paths here.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / RUN_CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def labels(self) -> Path:
        return self.path / LABELS

    @property
    def identity(self) -> Path:
        return self.path / IDENTITY

    def eval_result(self, name: str) -> Path:
        """``eval_NAME.json``: the scores ``mept eval`` writes here (of a split, or of a file)."""
        return self.path / f"{EVAL_PREFIX}{name}.json"

    @property
    def incomplete(self) -> Path:
        return self.path / INCOMPLETE

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def seed(self, seed: int) -> "RunFolder":
        """The folder of one seed of a multi-seed run."""
        return RunFolder(self.path / f"{SEED_PREFIX}{seed}")

    def claim(self, overwrite: bool) -> bool:
        """The one ownership check (:func:`mept.files.ownership.claim_output`) for a run folder; True: a run to
        replace."""
        hint = " or --resume to continue it" if has_progress(self.path) else ""
        return claim_output(self.path, RUN, overwrite=overwrite, hint=hint)

    def resume_settings(self, given: dict[str, Any]) -> dict[str, Any] | None:
        """The saved settings of the run here, to continue it *here* (it may have been moved or copied).

        Flags repeated with ``--resume`` must agree with the saved run: a different value would
        silently not apply, so it is refused, naming each flag with both values. None: no run here
        (``train`` then reports "holds no run to resume").
        """
        path = settings_source(self.path) / RUN_CONFIG  # the old run an interrupted --overwrite moved aside, if any
        if not path.exists():
            return None
        saved = migrate_run_config(read_json_object(path))
        given = {k: data_path(v) if k in DATA_PATHS and isinstance(v, str) else v for k, v in given.items()}
        differ = [f"{k} (saved {saved[k]!r}, given {v!r})" for k, v in _differing(saved, given).items()]
        if differ:  # never suggest --overwrite here: the user asked to keep this run
            raise MeptError(f"--resume continues the run in {self.path} with its saved settings, but these flags "
                            f"differ: {'; '.join(differ)}; drop them to continue the run as it was saved, or train "
                            f"with the new settings into another --output")
        return {**saved, "output": str(self.path), **{k: v for k, v in given.items() if k == "progress"}}

    def prepare(self, cfg: TrainConfig, resume: bool) -> None:
        """Refuse to mix runs: an existing run is replaced only with --overwrite, continued only with --resume.

        ``--overwrite`` moves the old run aside (:func:`move_aside`); it is deleted only once the new
        run has written something resumable, and put back if the new one fails first. A resumed run
        continues here even if its ``run_config.json`` was written elsewhere (a copied or moved
        run): the saved settings must match except for the folder itself.
        """
        mine = cfg.to_dict()
        if resume:
            if not self.config.exists():
                raise MeptError(f"--resume: {self.path} holds no run to resume (no {RUN_CONFIG})")
            previous = migrate_run_config(read_json_object(self.config))
            differ = _differing(previous, mine)
            if differ:
                raise MeptError(f"--resume: settings differ from the run in {self.path}: {', '.join(differ)}")
            if previous.get("output") != mine["output"]:  # a moved or copied run now lives here
                self.write_settings({**previous, "output": mine["output"]})
            return
        if self.claim(cfg.overwrite):
            move_aside(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_settings(mine)

    def write_settings(self, settings: dict[str, Any]) -> None:
        atomic_write(self.config, lambda tmp: Path(tmp).write_text(json.dumps(settings, indent=2)))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write(self.metrics, lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))


def _differing(saved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``given`` that differ from the saved run's (those a --resume may change aside); a
    setting an older run_config.json lacks (metric, head_pooling) cannot differ: it read as the default."""
    return {k: v for k, v in given.items() if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != v}


def hidden_run_hint(run: Path) -> str:
    """A sentence naming ``.NAME.replaced`` beside ``run`` if one is there, else ``""``.

    Readers (``eval``, ``predict``, ``analyze``) do not move folders; they say where the run is.
    """
    backup = sibling(Path(run), REPLACED_SUFFIX)
    if not backup.exists():
        return ""
    writer = writer_of(run)
    if writer is not None:  # not interrupted: a `mept train --overwrite` is running there now
        return (f"; a `mept train --overwrite` is writing {run} now (pid {writer.get('pid')} on {writer.get('host')}): "
                f"the previous run waits in {backup} until the new one has a checkpoint; evaluate that, or wait")
    return (f"; an interrupted `mept train --overwrite` left the previous run in {backup}: the next "
            f"`mept train` into {run} puts it back, or move it back yourself")


def _restore(out: Path, backup: Path, message: str) -> None:
    """The moved-aside run takes the folder back from the new run's unfinished shell."""
    shutil.rmtree(out, ignore_errors=True)
    backup.rename(out)
    warn(message)


def trained_folders(run_dir: str | Path) -> list[Path]:
    """The folders holding ``best/``: the run itself, or each ``seed-N`` of a multi-seed run (by seed)."""
    def trained(folder: Path) -> bool:  # a prompt adapter, or a baseline's folder (LoRA, full, probe)
        return (folder / BEST / WEIGHTS_NAME).exists() or (folder / BEST / META_NAME).exists()

    run = Path(run_dir)
    if not (run / RUN_CONFIG).exists():
        raise MeptError(f"{run} is not a mept run folder (no {RUN_CONFIG}); point at the --output of `mept train`"
                        + hidden_run_hint(run))
    if trained(run):
        return [run]
    seeds = [p for p in run.glob(f"{SEED_PREFIX}*") if trained(p) and p.name.removeprefix(SEED_PREFIX).isdigit()]
    if not seeds:
        hint = hidden_run_hint(run)
        raise MeptError(f"{run} has no trained checkpoint (best/{WEIGHTS_NAME})" + (hint or "; did the training finish?"))
    return sorted(seeds, key=lambda p: int(p.name.removeprefix(SEED_PREFIX)))


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
        writer = writer_of(run) or writer_of(run.parent)  # a seed folder is written under its run's lock
        if writer is not None:
            warn(f"{run} is being trained right now (pid {writer.get('pid')}); using its best checkpoint so far")
        else:
            warn(f"{run} is an unfinished run ({INCOMPLETE} is present); using its best checkpoint so far")
    return TrainConfig.from_dict(migrate_run_config(read_json_object(run / RUN_CONFIG)), origin=str(run / RUN_CONFIG))


def load_trained(run_dir: str | Path, *, data: bool = False, tasks: list[str] | None = None,
                 one_seed: bool = False, **overrides: Any) -> Prepared:
    """The best checkpoint on its backbone, checked against the run's settings: the one way a trained run is rebuilt.

    Without ``data`` no data set is loaded: the encoder and task specs come from ``labels.json``
    (``mept eval --file``, ``mept predict``); runs written before ``labels.json`` existed fall back
    to rebuilding from the training data. With ``data`` the run's validation and test sets are
    built too, of its tasks or of ``tasks`` (``mept eval``, ``mept analyze``). A multi-seed
    ``run_dir`` gives the seed that validated best, or with ``one_seed`` an error asking for one.
    ``overrides`` replace saved settings (``None`` keeps the saved one).
    """
    if one_seed:
        folders = trained_folders(run_dir)
        if len(folders) > 1:
            raise MeptError(f"{run_dir} holds {len(folders)} seeds ({', '.join(p.name for p in folders)}); "
                            f"point at one, e.g. {folders[0]}")
        run = folders[0]
    else:
        run = trained_folder(run_dir)
    cfg = replace(read_config(run), progress=False, **{k: v for k, v in overrides.items() if v is not None})
    check_backbone_kind(run, cfg)
    if data:
        check_data_files(run, cfg)
        prepared = prepare(cfg, eval_tasks=tasks)
        check_identity(run, prepared.model.backbone, None)  # labels are rebuilt from the data here, not read
    elif not (run / LABELS).exists():
        prepared = prepare(cfg)
    else:
        info, specs, labels = read_labels(run)
        method_cfg = make_config(cfg.method, **cfg.method_settings())
        model, encoder = build_model(cfg, method_cfg, info["format"], labels, info["num_labels"])
        prepared = Prepared(cfg, model, encoder, specs, [], {}, {}, {})
        check_identity(run, prepared.model.backbone, info)
    prepared.model.load_adapter(run / BEST, check_config=True)
    return prepared


def check_data_files(run: Path, cfg: TrainConfig) -> None:
    """A run's validation and test splits (and, from its own file, its classes) are rebuilt from the files it
    was trained with: say so, naming the one that is gone, instead of failing on a file the user did not name."""
    for name, role in (("train_file", "training file"), ("val_file", "validation file"), ("test_file", "test file")):
        path = getattr(cfg, name)
        if path is not None and not Path(path).exists():
            raise MeptError(f"{run}'s validation and test splits are rebuilt from the files it was trained with "
                            f"(its classes and held-out rows come from them), but its {role} {path} is gone; "
                            f"put it back (or fix the path in {run / RUN_CONFIG}), or score a labelled file of your "
                            f"own with `mept eval --file` / `mept analyze --split FILE`")


def check_backbone_kind(run: Path, cfg: TrainConfig) -> None:
    """Before a model is built: the backbone ``run_config.json`` names must be of the kind, width and depth
    the adapter in ``best/`` was trained on (else building it fails on something else first, e.g. the head)."""
    best = run / BEST
    baseline = is_baseline_checkpoint(best)
    meta = read_baseline_meta(best) if baseline else read_adapter_config(best)
    saved_in = best / (META_NAME if baseline else CONFIG_NAME)
    saved = meta.get("backbone") if isinstance(meta.get("backbone"), dict) else {}
    config = backbone_config(cfg.model)
    mine = {"model_type": getattr(config, "model_type", None),
            "hidden_size": getattr(config, "hidden_size", None) or getattr(config, "d_model", None),
            "num_layers": getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)}
    differ = [k for k, v in mine.items() if saved.get(k) is not None and v is not None and saved[k] != v]
    if differ:
        def shape(d: dict) -> str:
            return f"a {d.get('model_type')} model, {d.get('hidden_size')} wide, {d.get('num_layers')} layers"

        raise MeptError(f"the adapter in {run} was trained on {shape(saved)} (says {saved_in}), but {run / RUN_CONFIG} "
                        f"names model {cfg.model!r} ({shape(mine)}); put back the model it was trained on, or restore "
                        f"whichever of the two files was edited")


def read_labels(run: Path) -> tuple[dict[str, Any], dict[str, TaskSpec], LabelSpace | None]:
    """``labels.json`` of a trained folder: the saved object, its task specs, and the head's label space."""
    info = read_json_object(run / LABELS)
    if not isinstance(info.get("tasks"), dict):
        raise MeptError(f"{run / LABELS} lacks its tasks entry; the run folder is damaged")
    specs = {name: TaskSpec(name, tuple(s["verbalizer"]), s["metric"], s["kind"], s.get("description", ""))
             for name, s in info["tasks"].items()}
    labels = LabelSpace(info["words"], info["task_words"]) if info["words"] is not None else None
    return info, specs, labels


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
              for name in FILE_FIELDS}
    given = cfg.verbalizer is not None or not cfg.train_file  # classes named by --verbalizer or a built-in task
    return read_examples(path, spec, labelled=labelled, verbalizer_given=given, **chosen)
