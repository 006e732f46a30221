"""``mept`` command line: train, eval, predict, analyze, serve, and listings.

Subcommands mirror the package: ``train`` -> :mod:`mept.harness.train`, ``eval`` and
``predict`` -> :mod:`mept.harness.eval_run` (on a run folder read back by
:mod:`mept.harness.run_folder`), ``analyze`` -> :mod:`mept.analysis`. This module only parses
arguments and dispatches. Every user error is one line on stderr (``error: ...``) and exit
status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Callable

import mept
from mept import data
from mept.cli.flags import ListFlag
from mept.cli.listing import print_methods
from mept.core.config import choices_of
from mept.core.registry import all_method_names
from mept.data.custom import FILE_FIELDS
from mept.errors import MeptError, MeptWarning, internal_error_line, os_error_line
from mept.files.ownership import claim_output
from mept.files.paths import user_path
from mept.harness.compare import DEFAULT_METHODS, CompareConfig, compare
from mept.harness.eval_run import analysis_sets, eval_run, predict_file
from mept.harness.evaluate import EvalMode
from mept.harness.precision import autocast
from mept.harness.prepare_run import check_plan, check_run
from mept.harness.report_print import print_summary
from mept.harness.run_folder import ANALYSIS_DIR, RunFolder, load_trained, move_aside, output_lock, settle
from mept.harness.signals import Terminated, terminate_as_interrupt
from mept.harness.train import run
from mept.harness.train_config import LR_GRID_KEYWORDS, TrainConfig, keyword_lr_grid
from mept.model.backbones import load_backbone
from mept.serve.server import add_parser as add_serve_parser
from mept.serve.server import run_command

_default_showwarning = warnings.showwarning

# ``mept compare`` passes these to every method's ``mept train`` unchanged (the shared budget, data reading, head
# and output form: a comparison on MPNet or a decoder needs --head and --format like a single run does)
COMPARE_FORWARDED = ("--model", "--max-length", "--max-steps", "--epochs", "--batch-size", "--eval-every",
                     "--max-train-examples", "--max-eval-examples", "--task-name", "--text-field", "--text-pair-field",
                     "--label-field", "--template", "--verbalizer", "--head-lr", "--head", "--head-pooling", "--format",
                     "--mixed-precision")


def train_flags() -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    """``mept train``'s flags, from :class:`~mept.harness.train_config.TrainConfig`'s field metadata: field name ->
    (flag names, ``add_argument`` options). A list takes :class:`~mept.cli.flags.ListFlag` (repeats accumulate),
    a bool is a switch."""
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta.get("flag", True):
            continue
        flags = tuple(meta.get("flags", (f"--{f.name.replace('_', '-')}",)))
        help_text = meta.get("help")
        if help_text:
            help_text = help_text.replace("{methods}", ", ".join(all_method_names()))
        options: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        kind = hints[f.name]
        choices = choices_of(kind)
        if choices is not None:  # a choice setting: its Literal type's values
            kind, options["choices"] = str, list(choices)
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # ``X | None``: the flag takes an X
            kind = next(t for t in typing.get_args(kind) if t is not type(None))
        if kind is bool:
            options["action"] = "store_true"
        else:
            if typing.get_origin(kind) is list:
                options["action"] = ListFlag
                kind = typing.get_args(kind)[0]
            kind = meta.get("type", kind)
            if kind is not str:
                options["type"] = kind
            for key in ("nargs", "choices"):
                if key in meta:
                    options[key] = meta[key]
        out[f.name] = (flags, options)
    return out


def _method_args(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise MeptError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if key in out and out[key] != parsed:  # which one the user meant is theirs to say, not the last one's
            raise MeptError(f"--set {key} is given twice ({out[key]!r} and {parsed!r}); give it once")
        out[key] = parsed
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mept", description="Mixture-of-Expert Prompt Tuning on frozen transformers")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train prompts (no arguments: MEPT mixture on the offline vader suite with MiniLM)")
    tr.add_argument("--config", help="YAML or JSON file of training settings (flags override it)")
    flags = train_flags()
    for names, options in flags.values():
        tr.add_argument(*names, **options)
    tr.add_argument("--set", dest="method_args", action=ListFlag, metavar="KEY=VALUE",
                    help="any method setting, e.g. --set routing=gumbel shared=off layers=1-6")
    tr.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    tr.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("eval", help="evaluate a trained run (its best checkpoint), optionally on other tasks")
    ev.add_argument("run_dir")
    ev.add_argument("--task", "--tasks", dest="tasks", action=ListFlag, help="tasks to evaluate (default: the run's)")
    ev.add_argument("--split", default="validation", choices=["validation", "test"])
    ev.add_argument("--file", help="a labelled CSV/JSONL file to score (read like the run's training file)")
    ev.add_argument("--data-dir")
    ev.add_argument("--max-eval-examples", type=int)
    ev.add_argument("--eval-mode", choices=list(typing.get_args(EvalMode)))
    _file_flags(ev)

    pd = sub.add_parser("predict", help="label new (unlabelled) data with a trained run")
    pd.add_argument("run_dir")
    pd.add_argument("--file", required=True, help="CSV/JSONL rows to label (a label column, if any, is ignored)")
    pd.add_argument("--output", required=True, help="predictions file: .csv or .jsonl")
    pd.add_argument("--task", help="which of the run's tasks the rows belong to (default: the run's only task)")
    pd.add_argument("--eval-mode", choices=list(typing.get_args(EvalMode)))
    pd.add_argument("--overwrite", action="store_true", help="replace an earlier predictions file at --output "
                    "(never a file mept predict did not write)")
    pd.add_argument("--no-formula-escape", action="store_true", help="CSV: write cells that start like a "
                    "spreadsheet formula (= + - @) unchanged; by default they get a leading ' so a spreadsheet "
                    "shows them as text")
    _file_flags(pd)

    add_serve_parser(sub)

    an = sub.add_parser("analyze", help="routing pathways, expert utilisation, t-SNE of a trained routed run")
    an.add_argument("run_dir")
    an.add_argument("--tasks", action=ListFlag, help="tasks to analyse (default: the run's)")
    an.add_argument("--out", help="output folder (default RUN_DIR/analysis)")
    an.add_argument("--max-per-task", type=int, default=200)
    an.add_argument("--no-baseline", action="store_true", help="skip the frozen-backbone t-SNE")
    an.add_argument("--overwrite", action="store_true", help="replace an earlier analysis in --out (only a folder "
                    "mept analyze wrote)")
    an.add_argument("--by", choices=["label"], help="also break routing down by gold class")
    an.add_argument("--split", default="validation",
                    help="validation (default), test, or a labelled CSV/JSONL file; the paper's Fig. 4c uses "
                         "the SuperGLUE development set (its caption; Appendix D: up to 200 validation examples "
                         "per task), which is our test split of the SuperGLUE tasks")
    an.add_argument("--feature-model", help="also a t-SNE of the raw inputs through this model (paper Fig. 4a: "
                                            "BERT), e.g. mpnet or a hub id")

    cp = sub.add_parser("compare", help="MEPT against prompt tuning, P-Tuning v2, LoRA, full fine-tuning and a linear "
                        "probe on your files: lr per method chosen on validation, seeds, one table")
    cp.add_argument("--train-file", required=True)
    cp.add_argument("--val-file", help="default: a split of the training file, as for mept train")
    cp.add_argument("--test-file", required=True)
    cp.add_argument("--methods", action=ListFlag, default=None, help="default: mept prompt_tuning ptuning_v2 lora full probe")
    cp.add_argument("--seeds", type=int, action=ListFlag, default=[1, 2, 3])
    cp.add_argument("--output", default="runs/compare", help="folder for the runs and compare.json/.csv/.png")
    cp.add_argument("--no-lr-grid", action="store_true", help="each method's default lr instead of its grid (cheaper)")
    cp.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --output (moved aside "
                    "until the new one has a checkpoint; only a folder mept compare wrote)")
    cp.add_argument("--no-progress", action="store_true", help="no line per method; the methods log no progress")
    by_flag = {names[0]: options for names, options in flags.values()}
    for flag in COMPARE_FORWARDED:
        cp.add_argument(flag, **by_flag[flag])

    sub.add_parser("methods", help="list prompt methods and baselines, with their trainable parameters on MiniLM")
    sub.add_parser("tasks", help="list tasks")
    pr = sub.add_parser("params", help="print the parameter report of a method on a backbone")
    pr.add_argument("--method", default="mept", help=f"prompt method or baseline: {', '.join(all_method_names())}")
    pr.add_argument("--model", default="minilm")
    pr.add_argument("--set", dest="method_args", action=ListFlag, metavar="KEY=VALUE")
    pr.add_argument("--num-labels", type=int, help="count a classification head of this many classes too "
                    "(a run adds it once its labels are known)")
    return parser


def _file_flags(parser: argparse.ArgumentParser) -> None:
    """How to read a new file; each defaults to what the run was trained with."""
    for name in FILE_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", help="default: the run's own setting")
    parser.add_argument("--batch-size", type=int, dest="eval_batch_size")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for name in train_flags() if getattr(args, name, None) is not None}
    if args.method_args:
        values["method_args"] = _method_args(args.method_args)
    if args.no_progress:
        values["progress"] = False
    keyword = _lr_grid_keyword(values)
    cfg, saved = _train_config(args, values)
    if keyword is None:
        return cfg
    grid = keyword_lr_grid(cfg, keyword)
    if saved and cfg.lr_grid != grid:  # as resume_settings refuses any flag that differs from the saved run
        raise MeptError(f"--resume continues the run in {cfg.output} with its saved settings, but --lr-grid "
                        f"{keyword} means {_grid_text(grid)} here and the run saved {_grid_text(cfg.lr_grid)}; drop "
                        f"--lr-grid to continue the run as it was saved, or train into another --output")
    if cfg.progress and not saved:
        print(f"lr grid {keyword}: {_grid_text(grid)} ({LR_GRID_KEYWORDS[keyword]})", file=sys.stderr, flush=True)
    return dataclasses.replace(cfg, lr_grid=grid)


def _grid_text(grid: list[float] | None) -> str:
    return ", ".join(f"{x:g}" for x in grid) if grid else "no grid"


def _lr_grid_keyword(values: dict[str, Any]) -> str | None:
    """Numbers given to --lr-grid become floats in ``values``; a keyword (``paper``, ``auto``) is taken out and
    returned, to be resolved once the run's method and backbone are known (:func:`keyword_lr_grid`)."""
    grid = values.pop("lr_grid", None)
    if grid is None:
        return None
    if len(grid) == 1 and grid[0] in LR_GRID_KEYWORDS:
        return grid[0]
    try:
        values["lr_grid"] = [float(x) for x in grid]
    except ValueError:
        raise MeptError(f"--lr-grid takes numbers, {' or '.join(map(repr, LR_GRID_KEYWORDS))}, got "
                        f"{' '.join(grid)}") from None
    return None


def _train_config(args: argparse.Namespace, values: dict[str, Any]) -> tuple[TrainConfig, bool]:
    """The run's settings, and whether they are a saved run's (``--resume`` of a run that exists)."""
    if args.resume and not args.config:
        folder = RunFolder(Path(values.get("output", "runs/latest")))
        saved = folder.resume_settings(values)
        if saved is not None:
            return TrainConfig.from_dict(saved, origin=str(folder.config)), True  # names the folder it read
    if args.config:
        return TrainConfig.from_file(args.config, **values), False
    return TrainConfig.from_dict(values, origin="command line"), False


def cmd_train(args: argparse.Namespace) -> None:
    cfg = train_config_from_args(args)
    metrics = run(cfg, resume=args.resume)
    print_summary(metrics)
    print(f"wrote {RunFolder(Path(cfg.output)).metrics}")


def cmd_eval(args: argparse.Namespace) -> None:
    eval_run(args.run_dir, split=args.split, file=args.file, tasks=args.tasks, data_dir=args.data_dir,
             max_eval_examples=args.max_eval_examples, eval_mode=args.eval_mode,
             eval_batch_size=args.eval_batch_size, fields=_file_fields(args))


def _file_fields(args: argparse.Namespace) -> dict[str, str | None]:
    return {k: getattr(args, k) for k in FILE_FIELDS}


def cmd_predict(args: argparse.Namespace) -> None:
    predict_file(args.run_dir, args.file, Path(args.output), task=args.task,
                 eval_mode=args.eval_mode, eval_batch_size=args.eval_batch_size, fields=_file_fields(args),
                 overwrite=args.overwrite, escape_formulas=not args.no_formula_escape)


def cmd_analyze(args: argparse.Namespace) -> None:
    # Here, not at the top: the analysis stack (matplotlib, sklearn, PIL) costs 2.3 s of start-up that no other
    # command needs (`python -c "import time, mept; t = time.perf_counter(); import mept.harness.analyze_run;
    # print(time.perf_counter() - t)"`: 2,319 ms); tests/test_package.py keeps `import mept.cli` free of it.
    from mept.analysis.report import ANALYSIS
    from mept.harness.analyze_run import analyze_run
    if args.max_per_task < 1:
        raise MeptError(f"--max-per-task must be >= 1, got {args.max_per_task}")
    out = Path(args.out) if args.out else Path(args.run_dir) / ANALYSIS_DIR
    claim_output(out, ANALYSIS, overwrite=args.overwrite, flag="--out")  # before the model loads
    split_file = args.split not in ("validation", "test")  # a labelled file: the run's own data is not needed
    p = load_trained(args.run_dir, data=not split_file, one_seed=True, tasks=args.tasks)
    sets = analysis_sets(p, args.split, args.tasks)
    with output_lock(out):
        if claim_output(out, ANALYSIS, overwrite=args.overwrite, flag="--out"):
            move_aside(out)
        finished = False
        try:
            with autocast(p.config.mixed_precision_ran):  # the routes the run itself took, in its precision
                result = analyze_run(p, out, max_per_task=args.max_per_task, baseline=not args.no_baseline,
                                     by_label=args.by == "label", sets=sets, feature_model=args.feature_model)
            finished = True
        finally:
            settle(out, finished)
    print(result["summary"])
    for name, path in result["files"].items():
        print(f"wrote {path}")


def cmd_compare(args: argparse.Namespace) -> None:
    forwarded: list[str] = []
    values: dict[str, Any] = {}
    for flag in COMPARE_FORWARDED:
        name = flag[2:].replace("-", "_")
        value = getattr(args, name)
        if value is not None:
            forwarded += [flag, *map(str, value if isinstance(value, list) else [value])]
            values[name] = value
    cfg = CompareConfig(train_file=args.train_file, val_file=args.val_file, test_file=args.test_file,
                        output=args.output, methods=args.methods or list(DEFAULT_METHODS),
                        seeds=args.seeds, train_args=forwarded, search_lr=not args.no_lr_grid,
                        overwrite=args.overwrite, progress=not args.no_progress)
    with warnings.catch_warnings():  # the data's warnings come once, beside the table (compare collects them)
        warnings.simplefilter("ignore", MeptWarning)
        for method in cfg.methods:  # every method's plan is checked before any folder or log is made
            check_run(TrainConfig.from_dict({**values, "method": method, "train_file": cfg.train_file,
                                             "val_file": cfg.val_file, "test_file": cfg.test_file,
                                             "seeds": cfg.seeds}, origin="command line"))
    result = compare(cfg)
    print(f"\n{result['title']}\n")
    print(result["table"])
    if result["curves"]:
        print(f"\nlearning curves (validation, mean over seeds):\n{result['curves']}")
    for path in result["files"].values():
        print(f"wrote {path}")


def cmd_params(args: argparse.Namespace) -> None:
    if args.num_labels is not None and args.num_labels < 2:
        raise MeptError(f"--num-labels must be >= 2 (a classifier needs two classes), got {args.num_labels}")
    config = mept.make_config(args.method, **_method_args(args.method_args))
    check_plan(args.model, config, "base" if args.num_labels is None else "cls", args.num_labels)
    if args.num_labels is None:
        backbone = load_backbone(args.model, "base")
    else:  # the head a `mept train` classification run trains beside the prompts
        backbone = load_backbone(args.model, "cls", num_labels=args.num_labels)
    print(json.dumps(mept.get_model(backbone.model, config).parameter_report(), indent=2))
    if args.num_labels is None:
        print("note: prompt method only; a classification run also trains its head (classes known from the "
              "labels): add --num-labels N to count it", file=sys.stderr)


def closed_pipe() -> int:
    """``mept params | head -2``: the reader left, which is not an error; end quietly as a killed writer would.

    stdout is pointed at /dev/null so the interpreter's final flush does not raise again, and
    the status is 141 (128 + SIGPIPE), what a shell reports for ``cat`` or ``yes`` in the same pipe.
    """
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests): nothing to redirect
        pass
    return 141


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)


def join_negative_numbers(argv: list[str]) -> list[str]:
    """``--lr -1e-2`` -> ``--lr=-1e-2``: argparse would take a token like ``-1e-2`` for a flag.

    The value then parses, and validation can say what is wrong with it (a negative rate).
    """
    out: list[str] = []
    for token in argv:
        if out and NEGATIVE_NUMBER.match(token) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


PATH_ARGS = ("run_dir", "file", "output", "out", "config", "train_file", "val_file", "test_file", "data_dir", "split")


def expand_paths(args: argparse.Namespace) -> argparse.Namespace:
    """Every path flag read as a shell would: ``--output '~/x'`` is in the home folder, like ``--train-file '~/x.csv'``
    (quoted, the shell leaves ``~`` to us; a folder literally named ``~`` is never made)."""
    for name in PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, str(user_path(value)))
    return args


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """MeptWarnings are one ``warning: ...`` line on stderr; other libraries' warnings keep their form."""
    if issubclass(category, MeptWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    args = expand_paths(build_parser().parse_args(join_negative_numbers(list(sys.argv[1:] if argv is None else argv))))
    with terminate_as_interrupt(), warnings.catch_warnings():  # SIGTERM unwinds like Ctrl-C
        warnings.simplefilter("always", MeptWarning)  # every doubtful input is reported, not only the first
        warnings.showwarning = _show_warning
        return _dispatch(args)


INTERRUPT_HINTS = {
    "train": "resume with `mept train --resume --output DIR`",
    "predict": "no predictions were written; run `mept predict` again",
    "eval": "nothing was written; run `mept eval` again",
    "analyze": "run `mept analyze` again",
    "serve": "the server was still loading; nothing was served",
}


def cmd_tasks(args: argparse.Namespace) -> None:
    for name in data.task_names():
        spec = data.get_task(name)
        print(f"{name:<16} {spec.kind:<15} {spec.metric:<12} {' / '.join(spec.verbalizer)}")
    print("\nsuites (--tasks NAME trains their tasks as one mixture):")
    for name in data.suite_names():
        print(f"{name:<16} {', '.join(data.suite_tasks(name))}")


# each subcommand's function; the error handling around them is one, in _dispatch
COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "analyze": cmd_analyze, "serve": run_command,
    "compare": cmd_compare, "params": cmd_params, "methods": lambda args: print_methods(), "tasks": cmd_tasks,
}


def _dispatch(args: argparse.Namespace) -> int:
    try:
        COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
    except MeptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return closed_pipe()
    except KeyboardInterrupt as exc:
        cause = getattr(exc, "cause", exc)  # mept compare's Stopped: the signal, and a report of what exists
        what = "terminated (SIGTERM)" if isinstance(cause, Terminated) else "interrupted"
        print(f"{what}; {getattr(exc, 'report', None) or INTERRUPT_HINTS.get(args.command, 'nothing was changed')}",
              file=sys.stderr)
        return 143 if isinstance(cause, Terminated) else 130
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: name it, no traceback
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of ours: one line for the user, the traceback on request
        if os.environ.get("MEPT_DEBUG"):
            raise
        if "No space left on device" in str(exc):  # a library's own error class for ENOSPC (safetensors)
            print(f"error: No space left on device while writing ({type(exc).__name__}); free space where "
                  f"--output points and rerun (--resume continues from the last checkpoint)", file=sys.stderr)
            return 2
        print(f"error: {internal_error_line(exc)}", file=sys.stderr)
        return 1
    return 0

