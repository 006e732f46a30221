"""``TrainConfig``: everything a training run needs, as data.

One dataclass serves the CLI flags, a YAML/JSON ``--config`` file and the
Python API, and is saved as ``run_config.json`` in the output folder so that
``--resume`` and ``mept eval`` can rebuild the exact run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mept.errors import MeptError
from mept.task_types import FORMATS

DEFAULT_TASKS = ["bb-diverse"]  # the offline mixture a small frozen encoder can learn (bb-superglue: the paper family)


def paper_lr_grid(method: str) -> list[float]:
    """The paper's learning-rate grid for ``method``: a fact of the method's config class."""
    from mept.registry import method_class

    return list(method_class(method).config_class.paper_lr_grid)


# Training settings the MEPT paper states (benchmarks/paper_numbers.py lists them): 70 epochs, batch 16-32 (we take 32), max length 512
# including prompts, and its lr grid per method. Not stated, and ours: AdamW (the authors' code: Adafactor),
# warm-up 6% and weight decay 0.01 (the authors' code's values, also our defaults).
PAPER_TRAINING: dict[str, Any] = {"epochs": 70.0, "batch_size": 32, "max_length": 512}


def paper_settings(values: dict[str, Any]) -> dict[str, Any]:
    """``mept train --paper``: the paper's settings under ``values`` (what the user gave wins, key by key).

    Adds the paper's training settings and, for MEPT, the paper's method settings
    (:meth:`mept.methods.mept.MEPTConfig.paper`: no balance loss, top-1, one shared expert, Xavier normal).
    """
    method = values.get("method", "mept")
    grid = {} if "lr" in values else {"lr_grid": paper_lr_grid(method)}  # a given --lr replaces the grid
    out = {**PAPER_TRAINING, **grid, **values, "paper": True}
    if "max_length" not in values:  # the paper's 512 counts the prompts; a given --max-length counts text tokens
        out.setdefault("max_length_counts_slots", True)
    if method == "mept":  # the paper's router; m and N_r: flags win, else MEPTConfig.paper()'s
        from mept.methods.mept import PAPER_STATED, PAPER_UNSTATED

        paper = {**PAPER_UNSTATED, **PAPER_STATED}
        out["method_args"] = {**{k: v for k, v in paper.items() if k not in ("prompt_length", "num_experts")},
                              **values.get("method_args", {})}
        out.setdefault("prompt_length", paper["prompt_length"])
        out.setdefault("experts", paper["num_experts"])
    return out


@dataclass
class TrainConfig:
    # what to train
    method: str = "mept"
    model: str = "minilm"
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    format: str = "auto"
    source: str = "auto"
    data_dir: str | None = None
    eval_tasks: list[str] | None = None  # cross-task evaluation: train on tasks, evaluate on these
    # bring-your-own data
    train_file: str | None = None
    val_file: str | None = None
    test_file: str | None = None  # scored once at the end with the best checkpoint
    task_name: str | None = None  # default: the training file's name (reviews.csv -> "reviews")
    text_field: str = "text"
    text_pair_field: str | None = None
    label_field: str = "label"
    template: str | None = None
    verbalizer: list[str] | None = None
    # method settings (the common ones get flags; anything else goes in method_args)
    prompt_length: int | None = None
    experts: int | None = None
    method_args: dict[str, Any] = field(default_factory=dict)
    modules_to_save: list[str] | None = None  # backbone modules trained beside the prompts (default: its task head)
    # what a BERT-like head reads: "mean" of the final states over real tokens (the default where the
    # backbone allows it: sentence encoders such as MiniLM are trained for it) or "native" (its CLS pooler);
    # None: the model's default, written into run_config.json as resolved once the model is built
    head_pooling: str | None = None
    # optimisation
    epochs: float = 3.0  # the default run (bb-diverse, MiniLM): 3 x 278 steps, a few minutes on 2 CPU cores
    max_steps: int | None = None
    lr: float | None = None  # None: the method family's default (see default_lr)
    head_lr: float = 1e-2
    lr_grid: list[float] | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    batch_size: int = 16  # examples per optimizer step, over all processes and accumulation steps
    gradient_accumulation_steps: int = 1  # split each batch into this many forward/backward passes (less memory)
    max_grad_norm: float | None = None  # clip the gradients' global norm to this before each step
    eval_batch_size: int = 32
    # Text tokens; the prompt slots come on top (older runs counted them: see below). 384 (ours): with
    # up to 128 slots (P-Tuning v2 has 100) every method fits a 512-position encoder at the default;
    # the default suite's longest text has 212 MiniLM tokens, so nothing of it is cut.
    max_length: int = 384
    # Runs written before the text budget excluded the slots load with True (migrate_run_config):
    # their --max-length counted the slots, and that is what their numbers mean.
    max_length_counts_slots: bool = False
    max_train_examples: int | None = None  # per task
    max_eval_examples: int | None = None  # per task
    eval_every: int | None = None  # steps; None: at the end of each epoch
    save_every: int = 100  # steps between resumable checkpoints
    seed: int = 42
    seeds: list[int] | None = None
    eval_mode: str = "rank"  # seq2seq / causal classification: rank the verbalizer words or "generate"
    # what picks the best checkpoint, averaged over tasks: "task" (each task's own metric, as the paper),
    # accuracy, macro_f1, weighted_f1. None: "accuracy" for your own file (what it meant before the
    # flag existed, so old run_config.json files read the same), "task" for built-in tasks
    metric: str | None = None
    # hardware
    mixed_precision: str = "no"
    quantize: str | None = None  # "8bit" / "4bit" (bitsandbytes, GPU)
    gradient_checkpointing: bool = False
    deterministic: bool = False  # GPU: deterministic kernels (slower); CPU runs repeat bit for bit without it
    paper: bool = False  # --paper / "paper: true": from_dict fills the paper's settings (paper_settings) under the given
    # bookkeeping
    output: str = "runs/latest"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [t for t in self.tasks.replace(",", " ").split() if t]
        # run_config.json must rebuild the run from any directory: keep data paths absolute
        for name in ("train_file", "val_file", "test_file", "data_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(Path(value).expanduser().resolve()))
        if self.test_file and not self.train_file:
            raise MeptError("test_file needs train_file (built-in tasks bring their own test split)")
        if self.train_file:  # a file-based run is one task, named after the file unless told otherwise
            from mept.data.custom import file_task_name

            if self.task_name is None:
                told = self.tasks and self.tasks != DEFAULT_TASKS
                self.task_name = self.tasks[0] if told else file_task_name(self.train_file)
            self.tasks = [self.task_name]
        if self.format not in FORMATS:
            raise MeptError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.metric is None:
            self.metric = "accuracy" if self.train_file else "task"
        from mept.data.metrics import SELECTION_METRICS

        if self.metric not in SELECTION_METRICS:
            raise MeptError(f"metric must be one of {', '.join(SELECTION_METRICS)}, got {self.metric!r}")
        if self.head_pooling not in (None, "mean", "native"):
            raise MeptError(f"head_pooling must be 'mean' or 'native', got {self.head_pooling!r}")
        if self.eval_mode not in ("rank", "generate"):
            raise MeptError(f"eval_mode must be 'rank' or 'generate', got {self.eval_mode!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise MeptError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.quantize not in (None, "8bit", "4bit"):
            raise MeptError(f"quantize must be 8bit or 4bit, got {self.quantize!r}")
        for name in ("batch_size", "eval_batch_size", "max_length", "save_every", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise MeptError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise MeptError(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        if self.epochs <= 0 and not self.max_steps:
            raise MeptError("epochs must be > 0 (or give max_steps)")
        check_ranges(self)

    @classmethod
    def paper_mode(cls, **values: Any) -> "TrainConfig":
        """The paper's settings (:func:`paper_settings`), ``values`` overriding them: the API of ``--paper``."""
        return cls.from_dict(paper_settings(values), origin="paper mode")

    def default_lr(self) -> float:
        """AdamW default for prompts and routers, tuned on the offline suite (paper grids: --lr-grid paper).

        On MiniLM mixture training (bb-cb/wsc/rte/boolq, 600 steps) 1e-2 and 3e-3 score alike,
        3e-2 is unstable and 1e-1 collapses to the majority class. Baselines (LoRA, full
        fine-tuning, probe) name their own default (``default_lr`` of their config class).
        """
        from mept.registry import method_class

        return getattr(method_class(self.method).config_class, "default_lr", 1e-2)

    def method_settings(self) -> dict[str, Any]:
        from mept.registry import method_class

        method_class(self.method)  # an unknown method is named before anything else
        settings = dict(self.method_args)
        if self.prompt_length is not None:
            settings["prompt_length"] = self.prompt_length
        if self.experts is not None:
            key = method_class(self.method).config_class.experts_field
            if key is None:
                raise MeptError(f"--experts does not apply to method {self.method!r}")
            settings[key] = self.experts
        return settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise MeptError(f"{origin}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}")
        if data.get("paper") is True:  # --paper, or paper: true in a config file: the paper's settings under the given
            data = paper_settings(data)
        hints = typing.get_type_hints(cls)
        data = {k: _coerce(v, hints[k]) for k, v in data.items()}
        for key, value in data.items():
            if not _type_ok(value, hints[key]):
                raise MeptError(f"{origin}: {key} should be {_type_name(hints[key])}, got {short_repr(value)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        path = Path(path)
        if not path.exists():
            raise MeptError(f"config file {path} does not exist")
        if not path.is_file():
            raise MeptError(f"config file {path} is not a file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise MeptError(f"config file {path} is {path.stat().st_size:,} bytes; a settings file is at most "
                            f"{MAX_CONFIG_BYTES:,} (is it the right file?)")
        try:
            text = path.read_text(encoding="utf-8-sig")
            data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except UnicodeDecodeError:
            raise MeptError(f"config file {path} is not UTF-8 text; write it as YAML (.yaml) or JSON") from None
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise MeptError(f"config file {path} cannot be parsed: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise MeptError(f"config file {path} must hold a mapping of settings")
        if count_values(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
            raise MeptError(f"config file {path} expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases "
                            f"repeated inside each other?); write the settings out plainly")
        return cls.from_dict({**data, **overrides}, origin=str(path))


MAX_CONFIG_BYTES = 1 << 20
# A YAML alias is one node however often it is used; expanded, ten nested aliases of ten make 10^10
# values (the "billion laughs"), and echoing one in an error message ran for minutes at 1.7 GB.
MAX_CONFIG_VALUES = 100_000


def count_values(data: Any, limit: int) -> int:
    """How many values ``data`` holds with aliases expanded, counting no further than ``limit + 1``."""
    seen, stack = 0, [data]
    while stack and seen <= limit:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return seen


def short_repr(value: Any) -> str:
    """``repr`` cut to a readable length: what we echo back from a user's file stays small."""
    import reprlib

    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxlist, bounded.maxdict, bounded.maxstring, bounded.maxother = 3, 6, 6, 60, 60
    return bounded.repr(value)


# Keys added to run_config.json after runs were first saved, with the value that says what those
# older runs meant (a missing key must not silently take the new default's meaning).
LEGACY_RUN_CONFIG = {"max_length_counts_slots": True}


def migrate_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """A saved ``run_config.json`` as today's keys, keeping the meaning it was written with."""
    return {**{k: v for k, v in LEGACY_RUN_CONFIG.items() if k not in data}, **data}


# (field, low, high, low inclusive, high inclusive): ranges beyond the type, checked after it
RANGES = (
    ("epochs", 0.0, math.inf, False, False),
    ("lr", 0.0, math.inf, False, False),
    ("head_lr", 0.0, math.inf, False, False),
    ("weight_decay", 0.0, math.inf, True, False),
    ("warmup_ratio", 0.0, 1.0, True, True),
    ("max_steps", 1, math.inf, True, False),
    ("eval_every", 1, math.inf, True, False),
    ("max_train_examples", 1, math.inf, True, False),
    ("max_eval_examples", 1, math.inf, True, False),
    ("seed", 0, 2**32 - 1, True, True),
    ("prompt_length", 1, math.inf, True, False),
    ("experts", 1, math.inf, True, False),
)


def check_ranges(cfg: "TrainConfig") -> None:
    """Refuse NaN, infinities and out-of-range numbers by name, before anything runs.

    ``--max-steps 0`` or ``--eval-every 0`` used to mean "the default" silently; a value that
    cannot mean what it says is now an error, and ``None`` (not given) is the default.
    """
    for name, low, high, low_in, high_in in RANGES:
        value = getattr(cfg, name)
        if value is None or (name == "epochs" and cfg.max_steps and math.isfinite(value)):
            continue
        _check_range(name, value, low, high, low_in, high_in)
    for value in cfg.seeds or []:
        _check_range("seeds", value, 0, 2**32 - 1, True, True)
    for value in cfg.lr_grid or []:
        _check_range("lr_grid", value, 0.0, math.inf, False, False)


def _check_range(name: str, value: float, low: float, high: float, low_in: bool, high_in: bool) -> None:
    ok = math.isfinite(value) and (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if not ok:
        lo = f"{'>=' if low_in else '>'} {low:g}"
        hi = f" and {'<=' if high_in else '<'} {int(high) if high == int(high) else high}" if math.isfinite(high) else ""
        raise MeptError(f"{name} must be a number {lo}{hi}, got {value!r}")


def _coerce(value: Any, hint: Any) -> Any:
    """Forgive what YAML and people write: ``lr: 1e-2`` (YAML 1.1 reads a string), ``tasks: bb-rte``."""
    args = typing.get_args(hint)
    if isinstance(value, str) and float in args + (hint,) and int not in args + (hint,):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, str) and list[str] in (hint, *args):
        return [t for t in value.replace(",", " ").split() if t]
    if isinstance(value, list) and list[float] in (hint, *args):
        return [_coerce(v, float) for v in value]
    return value


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")
