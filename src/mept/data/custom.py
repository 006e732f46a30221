"""Bring-your-own classification data from CSV / TSV / JSONL files.

``load_custom`` turns a file of rows into a registered task: a Python format
string over the row's fields renders the input, labels (words or integer ids)
map through a verbalizer, and without a validation file a seeded stratified
10% of train is held out, the same way the SuperGLUE tasks do it.
"""

from __future__ import annotations

from pathlib import Path

from mept.data.examples import Example
from mept.data.jsonl import Row, read_table
from mept.data.registry import Splits, TaskSpec, register_task, task_names
from mept.data.splits import stratified_split
from mept.errors import MeptError

VALIDATION_FRACTION = 0.1
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


def load_custom(
    path_train: str | Path,
    path_val: str | Path | None = None,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    template: str | None = None,
    verbalizer: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    task_name: str = "custom",
) -> tuple[TaskSpec, Splits]:
    """Load a user's classification data as ``(spec, {"train", "validation"})`` and register it.

    ``template`` defaults to ``"{text_field}"`` or ``"{text_field} {text_pair_field}"``.
    ``verbalizer`` defaults to the sorted distinct labels of train (+ validation).
    """
    if task_name in task_names() and task_name not in _CUSTOM_NAMES:
        raise MeptError(f"task name {task_name!r} is a built-in task; pick another task_name")
    if template is None:
        template = f"{{{text_field}}}" + (f" {{{text_pair_field}}}" if text_pair_field else "")
    train_rows = read_table(path_train)
    val_rows = read_table(path_val) if path_val is not None else []
    if not train_rows:
        raise MeptError(f"{path_train}: no rows")
    for row in train_rows + val_rows:  # check fields up front so errors name the first bad line
        row.get(label_field)
        row.get(text_field)
        if text_pair_field:
            row.get(text_pair_field)
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
    spec = TaskSpec(task_name, words, "accuracy", "classification", f"custom data from {path_train}")
    splits: Splits = {"train": train, "validation": validation}

    def loader(source: str = "auto", data_dir: str | None = None, seed: int = seed) -> Splits:
        return load_custom(path_train, path_val, text_field, text_pair_field, label_field, template,
                           verbalizer, seed, task_name)[1]

    register_task(spec, loader)
    _CUSTOM_NAMES.add(task_name)
    return spec, splits
