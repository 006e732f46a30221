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

from mept.core.config import (
    DEFAULTS_GENERATION,
    REFERENCE_WIDTH,
    check_choice,
    choice_fields,
    choices_of,
    decoder_lr_of,
    defaults_of,
    width_ratio,
)
from mept.core.registry import method_class
from mept.core.task_types import FORMATS
from mept.data.checks import check_no_label_leak
from mept.data.custom import file_task_name
from mept.data.labels import check_verbalizer
from mept.data.metrics import SELECTION_METRICS
from mept.errors import MeptError, exception_line
from mept.files.paths import user_path
from mept.files.safe_names import check_component
from mept.harness.evaluate import EvalMode
from mept.harness.precision import PRECISIONS
from mept.harness.tracking import parse_report_to
from mept.inject.heads import HeadKind, HeadPooling
from mept.inject.spec import is_text_decoder, width_of
from mept.model.backbones import backbone_config

# The default mixture: real, human-rated sentiment of four domains, from a source that setup installs from PyPI
# (bb-diverse, the default until 2026-12-05, needs BIG-bench, which PyPI stopped serving).
DEFAULT_TASKS = ["vader"]


def paper_lr_grid(method: str) -> list[float]:
    """``--lr-grid paper`` for ``method``: the paper's grid where it states one, else ours (the config class says)."""
    return list(method_class(method).config_class.paper_lr_grid)


# The words --lr-grid takes in place of numbers, resolved once the run's method and backbone are known
LR_GRID_KEYWORDS = {"paper": "the paper's grid for the method (Appendix B.2) where it states one, else ours",
                    "auto": "the method's small grid around its default lr on this backbone"}


def keyword_lr_grid(cfg: "TrainConfig", keyword: str) -> list[float]:
    """The grid ``--lr-grid KEYWORD`` means for this run: read from the run's own method (a ``--config`` file's
    too) and, for ``auto``, from its backbone's config (no weights are read)."""
    if keyword == "paper":
        return paper_lr_grid(cfg.method)
    config = backbone_config(cfg.model)
    return cfg.auto_lr_grid(width_of(config), is_text_decoder(config))


# Training settings the MEPT paper states (benchmarks/paper_numbers.py lists them): 70 epochs and batch 16-32
# (Sec. 4.3; we take 32), max length 512 including prompts (Appendix B.3), and its lr grid per method (B.2).
PAPER_TRAINING: dict[str, Any] = {"epochs": 70.0, "batch_size": 32, "max_length": 512}
# What --paper leaves at our defaults because the paper does not state it, and whose choice each is.
PAPER_TRAINING_UNSTATED: dict[str, str] = {
    "optimizer": "AdamW: ours (the authors' code: Adafactor)",
    "warmup_ratio": "0.06: the authors' code's (also our default)",
    "weight_decay": "0.01: the authors' code's (also our default)",
    "eval_mode": "rank (the verbalizer word the model scores highest): ours; the authors' code generates and "
                 "matches exactly, which is --eval-mode generate (benchmarks/paper_t5.py passes it)",
    "head_lr": "1e-2: ours (the paper trains Llama's score head beside the prompts, Appendix B.2, at no stated lr)",
    "validation split": "10% of train per label: the authors' code's; the official validation set is our test split",
}


def paper_settings(values: dict[str, Any]) -> dict[str, Any]:
    """``mept train --paper``: the paper's settings under ``values`` (what the user gave wins, key by key).

    Adds the paper's training settings and the method's own (its config's ``paper_settings``; MEPT's
    :meth:`mept.methods.mept.MEPTConfig.paper`: no balance loss, top-1, one shared expert, Xavier normal).
    """
    method = values.get("method", "mept")
    config_class = method_class(method).config_class
    grid = {} if "lr" in values else {"lr_grid": paper_lr_grid(method)}  # a given --lr replaces the grid
    out = {**PAPER_TRAINING, **grid, **values, "paper": True}
    if "max_length" not in values:  # the paper's 512 counts the prompts; a given --max-length counts text tokens
        out.setdefault("max_length_counts_slots", True)
    paper = config_class.paper_settings
    if paper:  # the method's paper settings; m and N_r: flags win, else its values
        sized = ("prompt_length", config_class.experts_field)
        out["method_args"] = {**{k: v for k, v in paper.items() if k not in sized}, **values.get("method_args", {})}
        if not values.get("paper_search"):  # fixed m = N_r = 10 (ours); --paper-search picks them as the paper does
            out.setdefault("prompt_length", paper["prompt_length"])
            out.setdefault("experts", paper[config_class.experts_field])
    return out


def check_paper_search(cfg: "TrainConfig") -> None:
    """``--paper-search`` searches MEPT's m and N_r as the paper does: it needs --paper and MEPT, and picks m and
    N_r itself, so a given --prompt-length or --experts would silently not apply."""
    if not cfg.paper:
        raise MeptError("--paper-search is the MEPT paper's search of m, N_r and lr: add --paper")
    if cfg.method != "mept":
        raise MeptError(f"--paper-search searches MEPT's m and N_r (the paper's Sec. 4.3), not {cfg.method}'s; "
                        f"for {cfg.method} --paper already searches the paper's lr grid")
    given = [flag for flag, value in (("--prompt-length", cfg.prompt_length), ("--experts", cfg.experts))
             if value is not None]
    given += [f"--set {k}" for k in ("prompt_length", "num_experts") if k in cfg.method_args]
    if given:
        raise MeptError(f"--paper-search picks m and N_r itself; drop {', '.join(given)} (or drop --paper-search "
                        f"for one fixed setting)")


def setting(default: Any = dataclasses.MISSING, *, help: str | None = None, factory: Any = dataclasses.MISSING,
            **cli: Any) -> Any:
    """A :class:`TrainConfig` field with what ``mept train`` offers for it (read by :func:`mept.cli.train_flags`).

    ``help``: the flag's help text. ``cli`` (all optional): ``flags`` (names; default ``--the-name``),
    ``nargs``, ``choices``, ``type`` (default: from the annotation; lists take ``nargs="+"``),
    ``flag=False`` for a setting with no flag of its own.
    """
    return field(default=default, default_factory=factory, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    # what to train
    method: str = setting("mept", help="prompt method or baseline: {methods}")  # {methods}: filled from the registry
    model: str = setting("minilm", help="hub id, local path, or offline alias: minilm, smollm2")
    tasks: list[str] = setting(factory=lambda: list(DEFAULT_TASKS), flags=("--task", "--tasks", "--dataset"),
                               help="task(s) or suites: vader (default, offline: four sentiment domains), bb-diverse, "
                                    "bb-superglue / all (BIG-bench: set MEPT_BIGBENCH_TAR), superglue (the 7 "
                                    "SuperGLUE tasks, hub or --data-dir); several tasks = mixture training; image "
                                    "sets: bb-cifar10, fashion-mnist")
    format: str = setting("auto", help=", ".join(FORMATS))
    source: str = setting("auto", help="auto, jsonl, hub")
    data_dir: str | None = setting(None, help="local SuperGLUE release folder (train.jsonl / val.jsonl per task)")
    eval_tasks: list[str] | None = setting(None, help="cross-task: evaluate on these instead of the training tasks")
    # bring-your-own data
    train_file: str | None = setting(None, help="your own CSV/JSONL training data")
    val_file: str | None = setting(None, help="your own CSV/JSONL validation data")
    test_file: str | None = setting(None, help="your own labelled CSV/JSONL test data, scored at the end with the "
                                               "best checkpoint")
    task_name: str | None = setting(None, help="name of your file's task (default: the training file's name)")
    text_field: str = setting("text", help="your file's text column (default: text)")
    text_pair_field: str | None = setting(None, help="your file's second text column, for sentence pairs")
    label_field: str = setting("label", help="your file's label column (default: label)")
    template: str | None = setting(None, help="text around your file's fields, e.g. 'review: {text}' (field names "
                                              "only; {doc.body} reads a nested field)")
    verbalizer: list[str] | None = setting(None, help="label words in label-id order")
    # method settings (the common ones get flags; anything else goes in method_args: --set)
    prompt_length: int | None = setting(None, help="m, prompt tokens per layer")
    experts: int | None = setting(None, help="router experts N_r (mept, ptmoe) or prompts (smop)")
    method_args: dict[str, Any] = setting(factory=dict, flag=False)  # --set KEY=VALUE
    modules_to_save: list[str] | None = setting(None, help="backbone modules trained and saved beside the prompts "
                                                           "(default: the task head, e.g. classifier)")
    # None: the model's default, written into run_config.json as resolved once the model is built
    head_pooling: HeadPooling | None = setting(None, help=(
        "what a BERT-like classification head reads: mean (default) of the final states over real tokens -- "
        "sentence encoders such as MiniLM are trained for mean pooling, and their [CLS] pooler is not -- or "
        "native (the backbone's own [CLS] pooler); recorded in run_config.json and used again by eval, "
        "predict, --resume"))
    head: HeadKind | None = setting(None, help=(
        "the classification head: linear (one linear layer on the pooled state; the default where the backbone's "
        "own head adds a hidden dense + tanh layer of d x d, as MPNet's and RoBERTa's do) or native (the backbone's "
        "own head; the default elsewhere, where it is one linear layer already or cannot be made one); recorded "
        "in run_config.json"))
    # optimisation
    epochs: float = setting(3.0, help="passes over the training data (default 3)")  # the default run: 3 x 278 steps, a few minutes on 2 CPU cores
    max_steps: int | None = setting(None, help="optimizer steps; overrides --epochs")
    lr: float | None = setting(None, help="learning rate of prompts and routers (default: the method's; 1e-2 for "
                               "prompt methods, MEPT 1e-2 x min(1, 384 / the backbone's width); 1e-3 for every "
                               "prompt method on a text decoder)")  # None: default_lr
    head_lr: float = setting(1e-2, help="learning rate of the task head (default 1e-2)")
    lr_grid: list[float] | None = setting(None, type=str, help="learning rates to try (best on validation wins), "
                                                               "'paper' or 'auto' (the method's grid around its default "
                                                               "on this backbone)")
    weight_decay: float = setting(0.01, help="AdamW weight decay (default 0.01)")
    warmup_ratio: float = setting(0.06, help="share of the steps with a linear warm-up (default 0.06)")
    batch_size: int = setting(16, help="examples per optimizer step (over all processes)")
    gradient_accumulation_steps: int = setting(1, help="forward/backward passes per batch: same result, less memory")
    max_grad_norm: float | None = setting(None, help="clip the gradient norm to this before each step (default: no "
                                                     "clipping)")
    eval_batch_size: int = setting(32, help="examples per evaluation batch (default 32)")
    # Text tokens; the prompt slots come on top (older runs counted them: see below). 384 (ours): with
    # up to 128 slots (P-Tuning v2 has 100) every method fits a 512-position encoder at the default;
    # the default suite's longest text has 212 MiniLM tokens, so nothing of it is cut.
    max_length: int = setting(384, help="text tokens per input (default 384), the same for every method (longer "
                                        "texts are truncated); prompt slots come on top and must fit the model's "
                                        "positions with the text")
    # Runs written before the text budget excluded the slots load with True (migrate_run_config):
    # their --max-length counted the slots, and that is what their numbers mean.
    max_length_counts_slots: bool = setting(False, flag=False)
    max_train_examples: int | None = setting(None, help="per task")
    max_eval_examples: int | None = setting(None, help="per task")
    eval_every: int | None = setting(None, help="steps between evaluations (default: the end of each epoch)")
    save_every: int = setting(100, help="steps between resumable checkpoints (default 100)")
    seed: int = setting(42, help="random seed (default 42)")
    seeds: list[int] | None = setting(None, help="several runs: mean and std")
    eval_mode: EvalMode = setting("rank", help="rank (default) or generate, for text-to-text / causal classification")
    # None: "accuracy" for your own file (what it meant before the flag existed, so old run_config.json
    # files read the same), "task" for built-in tasks
    metric: str | None = setting(None, choices=SELECTION_METRICS, help=(
        "what picks the best checkpoint on validation: task (each task's own metric; default for built-in "
        "tasks), accuracy (default for your own file), macro_f1, weighted_f1; accuracy and macro-F1 are "
        "reported either way"))
    # hardware
    # auto: bf16 where the hardware computes it natively, fp32 elsewhere (mept.harness.precision says why)
    mixed_precision: str = setting("auto", choices=list(PRECISIONS), help=(
        "auto (default: bf16 where the CPU or GPU computes bf16 natively -- a CPU with avx512_bf16 or AMX, a "
        "bf16-capable CUDA GPU -- else fp32, since emulated bf16 is many times slower), no (fp32), bf16, fp16 "
        "(CUDA); prompts, routers and head keep fp32 weights either way"))
    # what auto (or the flag) resolved to when the run started: eval, predict, analyze and --resume use it
    mixed_precision_ran: str | None = setting(None, flag=False)
    # the generation of the methods' defaults the run trained with (mept.core.config.DEFAULTS_GENERATION); a run
    # saved before the key existed has 1, so a later default change never changes what it means
    method_defaults: int = setting(DEFAULTS_GENERATION, flag=False)
    quantize: str | None = setting(None, help="8bit or 4bit backbone (bitsandbytes, GPU)")
    gradient_checkpointing: bool = setting(False, help="recompute activations in the backward pass: less memory")
    # GPU: deterministic kernels (slower); CPU runs repeat bit for bit without it
    deterministic: bool = setting(False, help="deterministic GPU kernels (slower); CPU runs repeat without it")
    # --paper / "paper: true": from_dict fills the paper's settings (paper_settings) under the given
    paper: bool = setting(False, help="the MEPT paper's settings where it states them (no balance loss, top-1, one "
                                      "shared expert, Xavier normal, 70 epochs, batch 32 of its 16-32, max length "
                                      "512, its lr grid where it states one); flags override. What it leaves open "
                                      "stays ours, e.g. m = N_r = 10 (see --paper-search) and --eval-mode rank "
                                      "(the authors' code generates: --eval-mode generate)")
    paper_search: bool = setting(False, help="with --paper --method mept: pick m from {10, 15, 20}, N_r from "
                                             "{4, 10, 20} and the lr from its grid as the paper does (27 runs, best "
                                             "on validation), then train --seeds with the choice; the test split is "
                                             "scored once, for the choice (metrics.json 'search')")
    # False for the runs of a search: only the runs of the chosen setting score the test split
    score_test: bool = setting(True, flag=False)
    # bookkeeping
    # trackers: bookkeeping like progress (not a setting a resumed run must repeat); mept.harness.tracking
    report_to: list[str] = setting(factory=list, help="log the run to these trackers too: tensorboard, mlflow, "
                                   "wandb, trackio (several at once), or none (default); pip install "
                                   "\"mept[tracking]\"")
    output: str = setting("runs/latest", help="run folder (default runs/latest)")
    overwrite: bool = setting(False, help="replace the run in --output (moved aside until the new one has a "
                                          "checkpoint)")
    progress: bool = setting(True, flag=False)  # --no-progress

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [t for t in self.tasks.replace(",", " ").split() if t]
        # run_config.json must rebuild the run from any directory: keep data paths absolute
        for name in DATA_PATHS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, data_path(value))
        self.output = str(user_path(self.output))  # `--output ~/x` is in the home folder, as `--train-file ~/x.csv`
        if self.test_file and not self.train_file:
            raise MeptError("test_file needs train_file (built-in tasks bring their own test split)")
        if self.train_file:  # a file-based run is one task, named after the file unless told otherwise
            if self.task_name is None:
                told = self.tasks and self.tasks != DEFAULT_TASKS
                self.task_name = self.tasks[0] if told else file_task_name(self.train_file)
            check_component(self.task_name, "task_name")  # it names files (eval_validation_TASK.json)
            self.tasks = [self.task_name]
        self.report_to = parse_report_to(self.report_to)
        if self.format not in FORMATS:
            raise MeptError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.metric is None:
            self.metric = "accuracy" if self.train_file else "task"
        if self.metric not in SELECTION_METRICS:
            raise MeptError(f"metric must be one of {', '.join(SELECTION_METRICS)}, got {self.metric!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, choices in choice_fields(TrainConfig).items():  # every choice setting: its values, from its Literal
            check_choice(name, getattr(self, name), choices, none_ok=defaults[name] is None)
        if self.mixed_precision not in PRECISIONS:
            raise MeptError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}")
        if self.mixed_precision_ran not in (None, "no", "bf16", "fp16"):
            raise MeptError(f"mixed_precision_ran must be no, bf16 or fp16, got {self.mixed_precision_ran!r}")
        if self.quantize not in (None, "8bit", "4bit"):
            raise MeptError(f"quantize must be 8bit or 4bit, got {self.quantize!r}")
        for name in ("batch_size", "eval_batch_size", "max_length", "save_every", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise MeptError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise MeptError(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        if self.epochs <= 0 and not self.max_steps:
            raise MeptError("epochs must be > 0 (or give max_steps)")
        if self.paper_search:
            check_paper_search(self)
        check_ranges(self)
        if self.train_file:
            check_no_label_leak(self.label_field, self.text_field, self.text_pair_field, self.template)
        if self.verbalizer is not None:
            check_verbalizer(self.verbalizer, "verbalizer")

    @classmethod
    def paper_mode(cls, **values: Any) -> "TrainConfig":
        """The paper's settings (:func:`paper_settings`), ``values`` overriding them: the API of ``--paper``."""
        return cls.from_dict(paper_settings(values), origin="paper mode")

    def default_lr(self, hidden_size: int | None = None, text_decoder: bool = False) -> float:
        """AdamW default for prompts and routers, tuned on the offline suite (paper grids: --lr-grid paper).

        On MiniLM mixture training (bb-cb/wsc/rte/boolq, 600 steps) 1e-2 and 3e-3 score alike,
        3e-2 is unstable and 1e-1 collapses to the majority class. Baselines (LoRA, full
        fine-tuning, probe) name their own default (``default_lr`` of their config class). A method
        whose config sets ``lr_width_rule_since`` (MEPT) trains at ``min(1, 384 / d)`` of it on a backbone
        of width ``hidden_size`` (None: the backbone is not known yet, the unscaled value), and one that sets
        ``decoder_lrs`` (every prompt method) trains at the value of the run's defaults generation on a text
        decoder (:func:`mept.core.config.decoder_lr_of`).
        """
        return self._default_lr_and_rule(hidden_size, text_decoder)[0]

    def _default_lr_and_rule(self, hidden_size: int | None, text_decoder: bool) -> tuple[float, str | None]:
        """The default lr and the backbone rule that set it ("decoder", "width"; None: the plain default): one
        decision, read by :meth:`default_lr` and :meth:`lr_rule`."""
        config = method_class(self.method).config_class
        lr = getattr(config, "default_lr", 1e-2)
        decoder_lr = decoder_lr_of(config, self.method_defaults)
        if text_decoder and decoder_lr is not None and decoder_lr != lr:
            return decoder_lr, "decoder"
        since = getattr(config, "lr_width_rule_since", None)
        if hidden_size is not None and since is not None and self.method_defaults >= since and width_ratio(hidden_size) != 1:
            return lr * width_ratio(hidden_size), "width"
        return lr, None

    def lr_rule(self, hidden_size: int, text_decoder: bool) -> dict[str, Any] | None:
        """How the default lr followed the backbone, for metrics.json and the summary line; None when ``--lr``
        was given or no rule applied."""
        if self.lr is not None:
            return None
        lr, rule = self._default_lr_and_rule(hidden_size, text_decoder)
        if rule is None:
            return None
        config = method_class(self.method).config_class
        unscaled = self.default_lr()
        width_rule = f"{unscaled:g} x min(1, {REFERENCE_WIDTH} / width)"
        if rule == "width":
            return {"lr": lr, "unscaled": unscaled, "width": hidden_size, "backbone": f"a {hidden_size}-wide backbone",
                    "rule": width_rule}
        grid = getattr(config, "paper_lr_grid", ())  # where the decoder's value comes from, when it is the paper's
        why = ", the top of the paper's grid" if grid and lr == max(grid) else ""
        instead = width_rule if getattr(config, "lr_width_rule_since", None) is not None else f"{unscaled:g}"
        return {"lr": lr, "unscaled": unscaled, "width": hidden_size, "backbone": "a text decoder",
                "rule": f"{lr:g}{why}, in place of {instead}"}

    def auto_lr_grid(self, hidden_size: int | None, text_decoder: bool = False) -> list[float]:
        """``--lr-grid auto`` (what ``mept compare`` searches): the method's small grid (``compare_lr_grid`` of
        its config class, set around its unscaled default), moved by the factor its default moves on this
        backbone. The grid then always holds the lr a default run trains at: MEPT's fixed 3e-3..3e-2 held
        nothing within 30x of its 1e-4 default on a text decoder of generations 5-6 (3e-5, 1e-4, 3e-4 then; 3e-4,
        1e-3, 3e-3 around today's 1e-3), and on a 768-wide
        encoder it straddled the width rule's 5e-3 off-centre (now 1.5e-3, 5e-3, 1.5e-2). Ours."""
        factor = self.default_lr(hidden_size, text_decoder) / self.default_lr()
        return [float(f"{lr * factor:.3g}") for lr in method_class(self.method).config_class.compare_lr_grid]

    def lr_for(self, hidden_size: int | None, text_decoder: bool = False) -> float:
        """The lr a run trains its prompts and routers with: ``--lr`` if given, else the default on this backbone."""
        return self.lr if self.lr is not None else self.default_lr(hidden_size, text_decoder)

    def method_settings(self) -> dict[str, Any]:
        method_class(self.method)  # an unknown method is named before anything else
        settings = {**defaults_of(method_class(self.method).config_class, self.method_defaults), **self.method_args}
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
        if origin in FLAG_ORIGINS:  # the message names the flag's setting, as the user typed it
            return cls(**data)
        try:
            return cls(**data)
        except MeptError as exc:  # a bad value inside a file: say which file, not only which setting
            raise MeptError(f"{origin}: {exc}") from None

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
            if path.suffix in (".yaml", ".yml"):
                data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no tag is ever executed
            else:
                data = json.loads(text, object_pairs_hook=unique_keys)
        except UnicodeDecodeError:
            raise MeptError(f"config file {path} is not UTF-8 text; write it as YAML (.yaml) or JSON") from None
        except DuplicateKey as exc:
            raise MeptError(f"config file {path}: {exc}; a setting given twice would silently take the last value, "
                            f"keep one") from None
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise MeptError(f"config file {path} cannot be parsed: {exception_line(exc)}") from None
        if not isinstance(data, dict):
            raise MeptError(f"config file {path} must hold a mapping of settings")
        if count_values(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
            raise MeptError(f"config file {path} expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases "
                            f"repeated inside each other?); write the settings out plainly")
        return cls.from_dict({**data, **overrides}, origin=str(path))


MAX_CONFIG_BYTES = 1 << 20
FLAG_ORIGINS = ("command line", "paper mode")  # from_dict origins that are flags, not a file to name
DATA_PATHS = ("train_file", "val_file", "test_file", "data_dir")


def data_path(value: str) -> str:
    """A data path as ``run_config.json`` keeps it: ``~`` expanded, absolute (the run rebuilds from any directory)."""
    return str(user_path(value).resolve())


def check_seeds(seeds: list[int]) -> None:
    """``--seeds``: each a valid seed, none twice (a repeated seed would train into the same folder again)."""
    for value in seeds:
        _check_range("seeds", value, 0, 2**32 - 1, True, True)
    check_distinct("seeds", seeds)


def check_distinct(name: str, values: list[Any]) -> None:
    """Refuse a list setting that names a value twice (``--seeds 1 1``, ``--lr-grid 0.01 0.01``)."""
    twice = sorted({v for v in values if values.count(v) > 1}, key=values.index)
    if twice:
        raise MeptError(f"{name} names {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in twice)} more "
                        f"than once; each would be trained into the same folder again and counted twice")
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


class DuplicateKey(ValueError):
    """A mapping in a settings file names one key twice."""


def unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """``json.loads``' ``object_pairs_hook``: a dict, refusing a key given twice (JSON would keep the last)."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"key {key!r} appears twice")
        out[key] = value
    return out


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (YAML would keep the last).

    Merge keys (``<<: *defaults``) still work: what a mapping states itself overrides what it merges.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen:
                raise DuplicateKey(f"key {key!r} appears twice (lines {seen[key] + 1} and "
                                   f"{key_node.start_mark.line + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def short_repr(value: Any) -> str:
    """``repr`` cut to a readable length: what we echo back from a user's file stays small."""
    import reprlib

    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxlist, bounded.maxdict, bounded.maxstring, bounded.maxother = 3, 6, 6, 60, 60
    return bounded.repr(value)


# Keys added to run_config.json after runs were first saved, with the value that says what those
# older runs meant (a missing key must not silently take the new default's meaning).
LEGACY_RUN_CONFIG = {"max_length_counts_slots": True, "mixed_precision": "no", "method_defaults": 1, "head": "native"}


def migrate_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """A saved ``run_config.json`` as today's keys, keeping the meaning it was written with.

    Runs saved before ``--mixed-precision auto`` ran in exactly the precision they asked for.
    """
    out = {**{k: v for k, v in LEGACY_RUN_CONFIG.items() if k not in data}, **data}
    if "mixed_precision_ran" not in out and out["mixed_precision"] != "auto":
        out["mixed_precision_ran"] = out["mixed_precision"]
    return out


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
    check_defaults_generation(cfg.method_defaults)
    check_seeds(cfg.seeds or [])
    for value in cfg.lr_grid or []:
        _check_range("lr_grid", value, 0.0, math.inf, False, False)
    check_distinct("lr_grid", cfg.lr_grid or [])


def check_defaults_generation(generation: int) -> None:
    """``method_defaults`` must name a generation of this mept's defaults: a run saved by a newer mept (or a settings
    file with a made-up number) would otherwise train with this version's defaults while recording another's, the
    way an adapter of a newer format is refused (``mept.core.adapter_format.check_format_version``)."""
    if isinstance(generation, bool) or not 1 <= generation <= DEFAULTS_GENERATION:
        raise MeptError(f"method_defaults {generation!r} is not a defaults generation of this mept (1 to "
                        f"{DEFAULTS_GENERATION}): a run saved by a newer mept needs that version (upgrade mept), and a "
                        "settings file should leave method_defaults out")


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
    if origin is typing.Literal:  # a choice setting: a string here, checked against its values in __post_init__
        return isinstance(value, str)
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
    if choices_of(hint) is not None:
        return "str" if typing.get_origin(hint) is typing.Literal else "str | None"
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")
