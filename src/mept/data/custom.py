"""Bring-your-own classification data from CSV / TSV / JSONL files.

``load_custom`` turns a file of rows into a registered task: a Python format
string over the row's fields renders the input, labels (words or integer ids)
map through a verbalizer, and without a validation file a seeded stratified
10% of train is held out, the same way the SuperGLUE tasks do it. An optional
test file becomes the ``test`` split. ``read_examples`` reads a later file
(to score or to label) the same way, from the task's spec alone, so a trained
run needs only its own folder to read new data.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from mept.data.checks import check_labels, check_no_label_leak, check_rows, check_validation_size, warn_empty_texts
from mept.data.examples import Example
from mept.data.jsonl import Row, read_table
from mept.data.labels import LabelReader, check_verbalizer, is_number, normalise_label, sort_labels
from mept.data.registry import Splits, TaskSpec, register_task, task_names
from mept.data.splits import stratified_split
from mept.data.template import Template, field_text, parse_template
from mept.errors import MeptError, warn
from mept.files.safe_names import check_component, file_component

# How a file's rows are read: its columns and the template around them (mept train's flags, and the same
# flags of eval and predict, which default to the run's own).
FileField = Literal["text_field", "text_pair_field", "label_field", "template"]
FILE_FIELDS: tuple[str, ...] = typing.get_args(FileField)

VALIDATION_FRACTION = 0.1
MAX_HELD_OUT = 0.2  # never hold out more than this share of train for validation, however many labels
GENERIC_STEMS = ("train", "training", "data", "dataset", "all")  # file names that say nothing about the task
_CUSTOM_NAMES: set[str] = set()  # tasks registered here, which a later load_custom may replace


def default_verbalizer(labels: list[str]) -> tuple[str, ...]:
    """Distinct (normalised) labels, sorted numerically if all are whole numbers, else as text."""
    return sort_labels(set(labels))


def _label_id(label: str, verbalizer: tuple[str, ...], row: Row, reader: LabelReader | None = None,
              given: bool = True) -> int:
    """A normalised label maps to its verbalizer position; otherwise a whole number may be the id itself.

    Not when the classes are themselves whole numbers read from the data (``given`` False: no
    ``--verbalizer``): there ``1`` beside classes ``2, 3, 4`` is an unseen class, refused like any
    other, never class id 1 (``'3'``).
    """
    words = [normalise_label(w, row, "verbalizer") for w in verbalizer]
    if label in words:
        return words.index(label)
    ids = given or not any(is_number(w) for w in words)
    if ids and is_number(label) and 0 <= int(label) < len(verbalizer):
        if reader is not None:
            reader.as_ids.add(int(label))
        return int(label)
    if not ids:
        raise row.fail(f"label {label!r} is not one of the classes {list(verbalizer)} (whole numbers here are class "
                       f"names, not ids); fix the row, or pass --verbalizer to name the classes in id order")
    raise row.fail(f"label {label!r} is not in the verbalizer {list(verbalizer)} nor a label id below {len(verbalizer)}")


def _texts(row: Row, template: Template | None, text_field: str, text_pair_field: str | None) -> tuple[str, str | None]:
    """``(text, text_pair)`` of a row: the template's rendering, or the text field and the pair field apart
    (a pair is then encoded as the tokenizer encodes sentence pairs, e.g. ``[CLS] a [SEP] b [SEP]``)."""
    if template is not None:
        return template.render(row), None
    return field_text(row, text_field), field_text(row, text_pair_field) if text_pair_field else None


def file_task_name(path: str | Path) -> str:
    """The task name a data file implies: ``sentiment.csv`` -> ``sentiment``, ``spam/train.csv`` -> ``spam``.

    A name that a built-in task already uses gets ``-own`` appended, so ``rte.csv`` never shadows ``rte``.
    """
    path = Path(path)
    stem = path.stem.lower()
    if stem in GENERIC_STEMS and path.resolve().parent.name:
        stem = path.resolve().parent.name.lower()
    name = file_component(stem, fallback="custom")
    if name in task_names() and name not in _CUSTOM_NAMES:
        name += "-own"
    return name


def warn_same_file(train: str | Path, held_out: dict[str, str | Path | None]) -> None:
    """Warn when a held-out split is the training file itself (or a byte-identical copy): its score is not
    held out, whatever it is called."""
    import filecmp

    for split, path in held_out.items():
        if path is None:
            continue
        try:
            same = Path(path).resolve() == Path(train).resolve() or filecmp.cmp(path, train, shallow=False)
        except OSError:
            continue  # the reader names a missing file
        if same:
            warn(f"the {split} file {path} is the training file (or a copy of it): its {split} score measures "
                 f"fit to the training rows, not held-out accuracy")


def _check_fields(rows: list[Row], fields: list[str]) -> None:
    """Check fields up front so errors name the first bad line."""
    for row in rows:
        for name in fields:
            row.get(name)


def read_examples(path: str | Path, spec: TaskSpec, labelled: bool = True, **fields: Any) -> list[Example]:
    """Examples of ``spec``'s task from a file: labelled (to score) or not (to predict, label -1).

    ``fields``: how rows are read (``text_field``, ``text_pair_field``, ``label_field``, ``template``,
    ``verbalizer_given``), as :func:`examples_from_rows` takes them.
    """
    rows = read_table(path)
    if not rows:
        raise MeptError(f"{path}: no rows")
    return examples_from_rows(rows, spec, labelled=labelled, where=str(path), **fields)


def examples_from_rows(
    rows: list[Row],
    spec: TaskSpec,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    template: str | None = None,
    labelled: bool = True,
    verbalizer_given: bool = True,
    where: str = "",
) -> list[Example]:
    """Examples of ``spec``'s task from rows already read (a file's, or a request's in ``mept serve``).

    Labels are read by the one rule of :mod:`mept.data.labels`, as in training (``verbalizer_given``:
    the run's classes were named by ``--verbalizer`` or a built-in task, not read from its data);
    ``where`` names the rows' source in warnings.
    """
    if labelled:
        check_no_label_leak(label_field, text_field, text_pair_field, template)
    parsed = parse_template(template) if template is not None else None
    _check_fields(rows, [text_field] + ([text_pair_field] if text_pair_field else []) + ([label_field] if labelled else []))
    if parsed is None:
        warn_empty_texts(rows, [text_field] + ([text_pair_field] if text_pair_field else []),
                         "scored" if labelled else "labelled")
    reader = LabelReader(label_field)
    out = []
    for row in rows:
        text, pair = _texts(row, parsed, text_field, text_pair_field)
        if labelled:
            label = _label_id(reader.read(row), spec.verbalizer, row, reader, given=verbalizer_given)
            out.append(Example(text, label, spec.verbalizer[label], spec.name, text_pair=pair))
        else:
            out.append(Example(text, -1, "", spec.name, text_pair=pair))
    if labelled:
        reader.warn_merged(where)
        reader.warn_ids(where, spec.verbalizer)
    return out


def load_custom(
    path_train: str | Path,
    path_val: str | Path | None = None,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    template: str | None = None,
    verbalizer: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    task_name: str | None = None,
    path_test: str | Path | None = None,
) -> tuple[TaskSpec, Splits]:
    """Load a user's classification data as ``(spec, {"train", "validation"[, "test"]})`` and register it.

    ``template`` (field names only, :mod:`mept.data.template`) defaults to the text field, and the pair
    field kept apart for the tokenizer's pair encoding. Labels follow :mod:`mept.data.labels`.
    ``verbalizer`` defaults to the sorted distinct labels of train (+ validation).
    ``task_name`` defaults to the training file's name (:func:`file_task_name`).
    """
    task_name = check_component(task_name, "task name") if task_name else file_task_name(path_train)
    if task_name in task_names() and task_name not in _CUSTOM_NAMES:
        raise MeptError(f"task name {task_name!r} is a built-in task; pick another (--task-name)")
    check_no_label_leak(label_field, text_field, text_pair_field, template)
    if verbalizer:
        check_verbalizer(verbalizer, "verbalizer")
    warn_same_file(path_train, {"validation": path_val, "test": path_test})
    parsed = parse_template(template) if template is not None else None
    train_rows = read_table(path_train)
    val_rows = read_table(path_val) if path_val is not None else []
    test_rows = read_table(path_test) if path_test is not None else []
    if not train_rows:
        raise MeptError(f"{path_train}: no rows")
    _check_fields(train_rows + val_rows + test_rows, [label_field, text_field] + ([text_pair_field] if text_pair_field else []))
    check_rows(train_rows + val_rows + test_rows, label_field,
               [text_field] + ([text_pair_field] if text_pair_field else []))
    readers = {name: LabelReader(label_field) for name in ("train", "validation", "test")}
    labels = {name: [readers[name].read(r) for r in rows]
              for name, rows in (("train", train_rows), ("validation", val_rows), ("test", test_rows))}
    words = tuple(verbalizer) if verbalizer else default_verbalizer(labels["train"] + labels["validation"])

    def examples(rows: list[Row], split: str, where: str | Path | None) -> list[Example]:
        out = []
        for row, raw in zip(rows, labels[split]):
            label = _label_id(raw, words, row, readers[split], given=verbalizer is not None)
            text, pair = _texts(row, parsed, text_field, text_pair_field)
            out.append(Example(text, label, words[label], task_name, text_pair=pair))
        readers[split].warn_merged(str(where))
        if verbalizer is None:  # with --verbalizer, integer ids are the documented way to name classes
            readers[split].warn_ids(str(where), words)
        return out

    train = examples(train_rows, "train", path_train)
    if path_val is not None:
        validation = examples(val_rows, "validation", path_val)
    else:
        train, validation = stratified_split(train, VALIDATION_FRACTION, seed, max_fraction=MAX_HELD_OUT)
    check_labels(train, validation, words, str(path_train))  # refusals first: a warning before an error is noise
    missing = len({e.label for e in train}) - len({e.label for e in validation})
    if path_val is None and missing > 0:
        warn(f"{path_train}: {missing} label(s) have too few rows to hold one out each, so they are not in the "
             f"validation split ({len(validation)} of {len(train) + len(validation)} rows held out, at most "
             f"{MAX_HELD_OUT:.0%}); pass --val-file to choose the validation rows")
    check_validation_size(validation, str(path_val or path_train), held_out=path_val is None)
    spec = TaskSpec(task_name, words, "accuracy", "classification", f"custom data from {path_train}")
    splits: Splits = {"train": train, "validation": validation}
    if path_test is not None:
        splits["test"] = examples(test_rows, "test", path_test)

    def loader(source: str = "auto", data_dir: str | None = None, seed: int = seed) -> Splits:
        return load_custom(path_train, path_val, text_field, text_pair_field, label_field, template,
                           verbalizer, seed, task_name, path_test)[1]

    register_task(spec, loader, replace=task_name in _CUSTOM_NAMES)  # built-in names were refused above
    _CUSTOM_NAMES.add(task_name)
    return spec, splits
