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

from pathlib import Path

from mept.data.checks import check_labels, check_rows
from mept.data.examples import Example
from mept.data.jsonl import Row, read_table
from mept.data.registry import Splits, TaskSpec, register_task, task_names
from mept.data.splits import stratified_split
from mept.errors import MeptError

VALIDATION_FRACTION = 0.1
GENERIC_STEMS = ("train", "training", "data", "dataset", "all")  # file names that say nothing about the task
_CUSTOM_NAMES: set[str] = set()  # tasks registered here, which a later load_custom may replace


def _as_int(value: object) -> int | None:
    """An integer label id from an int or an int-looking string (CSV cells are strings)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def default_verbalizer(raw_labels: list[object]) -> tuple[str, ...]:
    """Distinct label values as strings, sorted numerically if all are integers, else as text."""
    distinct = set(raw_labels)
    ints = [_as_int(v) for v in distinct]
    if all(i is not None for i in ints):
        return tuple(str(i) for i in sorted(set(ints)))  # type: ignore[type-var]
    return tuple(sorted({str(v) for v in distinct}))


def _label_id(raw: object, verbalizer: tuple[str, ...], row: Row) -> int:
    """A label word maps to its verbalizer position; otherwise an integer is taken as the id itself."""
    if str(raw) in verbalizer:
        return verbalizer.index(str(raw))
    value = _as_int(raw)
    if value is not None and 0 <= value < len(verbalizer):
        return value
    raise row.fail(f"label {raw!r} is not in the verbalizer {list(verbalizer)} nor a label id below {len(verbalizer)}")


def _render(row: Row, template: str) -> str:
    try:
        return template.format(**row.data)
    except KeyError as e:
        raise row.fail(f"missing field {e.args[0]!r} used by the template {template!r}") from None
    except (IndexError, ValueError) as e:
        raise MeptError(f"bad template {template!r}: {e}; use named fields such as '{{text}}'") from None


def file_task_name(path: str | Path) -> str:
    """The task name a data file implies: ``sentiment.csv`` -> ``sentiment``, ``spam/train.csv`` -> ``spam``.

    A name that a built-in task already uses gets ``-own`` appended, so ``rte.csv`` never shadows ``rte``.
    """
    path = Path(path)
    stem = path.stem.lower()
    if stem in GENERIC_STEMS and path.resolve().parent.name:
        stem = path.resolve().parent.name.lower()
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-") or "custom"
    if name in task_names() and name not in _CUSTOM_NAMES:
        name += "-own"
    return name


def _check_fields(rows: list[Row], fields: list[str]) -> None:
    """Check fields up front so errors name the first bad line."""
    for row in rows:
        for name in fields:
            row.get(name)


def read_examples(
    path: str | Path,
    spec: TaskSpec,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    template: str | None = None,
    labelled: bool = True,
) -> list[Example]:
    """Examples of ``spec``'s task from a file: labelled (to score) or not (to predict, label -1)."""
    template = _default_template(template, text_field, text_pair_field)
    rows = read_table(path)
    if not rows:
        raise MeptError(f"{path}: no rows")
    _check_fields(rows, [text_field] + ([text_pair_field] if text_pair_field else []) + ([label_field] if labelled else []))
    out = []
    for row in rows:
        if labelled:
            label = _label_id(row.get(label_field), spec.verbalizer, row)
            out.append(Example(_render(row, template), label, spec.verbalizer[label], spec.name))
        else:
            out.append(Example(_render(row, template), -1, "", spec.name))
    return out


def _default_template(template: str | None, text_field: str, text_pair_field: str | None) -> str:
    if template is not None:
        return template
    return f"{{{text_field}}}" + (f" {{{text_pair_field}}}" if text_pair_field else "")


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

    ``template`` defaults to ``"{text_field}"`` or ``"{text_field} {text_pair_field}"``.
    ``verbalizer`` defaults to the sorted distinct labels of train (+ validation).
    ``task_name`` defaults to the training file's name (:func:`file_task_name`).
    """
    task_name = task_name or file_task_name(path_train)
    if task_name in task_names() and task_name not in _CUSTOM_NAMES:
        raise MeptError(f"task name {task_name!r} is a built-in task; pick another (--task-name)")
    template = _default_template(template, text_field, text_pair_field)
    train_rows = read_table(path_train)
    val_rows = read_table(path_val) if path_val is not None else []
    test_rows = read_table(path_test) if path_test is not None else []
    if not train_rows:
        raise MeptError(f"{path_train}: no rows")
    _check_fields(train_rows + val_rows + test_rows, [label_field, text_field] + ([text_pair_field] if text_pair_field else []))
    check_rows(train_rows + val_rows, label_field, [text_field] + ([text_pair_field] if text_pair_field else []))
    words = tuple(verbalizer) if verbalizer else default_verbalizer([r.get(label_field) for r in train_rows + val_rows])

    def examples(rows: list[Row]) -> list[Example]:
        out = []
        for row in rows:
            label = _label_id(row.get(label_field), words, row)
            out.append(Example(_render(row, template), label, words[label], task_name))
        return out

    train = examples(train_rows)
    if path_val is not None:
        validation = examples(val_rows)
    else:
        train, validation = stratified_split(train, VALIDATION_FRACTION, seed)
    check_labels(train, validation, words, str(path_train))
    spec = TaskSpec(task_name, words, "accuracy", "classification", f"custom data from {path_train}")
    splits: Splits = {"train": train, "validation": validation}
    if path_test is not None:
        splits["test"] = examples(test_rows)

    def loader(source: str = "auto", data_dir: str | None = None, seed: int = seed) -> Splits:
        return load_custom(path_train, path_val, text_field, text_pair_field, label_field, template,
                           verbalizer, seed, task_name, path_test)[1]

    register_task(spec, loader, replace=task_name in _CUSTOM_NAMES)  # built-in names were refused above
    _CUSTOM_NAMES.add(task_name)
    return spec, splits
