"""SuperGLUE as text-to-text tasks, with the MEPT paper's templates and label words.

The templates and verbalizers of the paper's six tasks (BoolQ, CB, COPA, MultiRC, RTE,
WiC) are those its Appendix B.5 lists (T5's SuperGLUE prefixes, "the SMoP formatting" of
its Appendix B.3; the authors' code writes the same); ``tests/test_paper_claims.py``
compares them. Appendix B.3 also says BoolQ's labels '0' and '1' map to 'True' and
'False' "respectively", the reverse of B.5's verbalizer order; we follow B.5 (the
official ``false`` is "False"). WSC is here beyond the paper's tables, with the authors'
code's template and verbalizer.

Each task is one :class:`SuperGlueTask` row below: the template that renders a
record into the model's input, the verbalizer (label id ``i`` -> word ``i``, in
the official label order), and where the template's fields live in the
official JSONL release (WSC nests its spans under ``target``; MultiRC nests
questions and answers under ``passage`` and is flattened to one example per
answer option).

Splits follow the authors' code: test labels are hidden, so the official
validation set is our ``test``; ``validation`` is a seeded 10%-per-label slice
of the official train set and ``train`` is the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from string import Formatter
from typing import Iterator

from mept.data.examples import Example
from mept.data.jsonl import Row, read_jsonl
from mept.data.registry import Splits, TaskSpec, register_suite, register_task
from mept.data.splits import grouped_split, stratified_split
from mept.errors import MeptError

VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class SuperGlueTask:
    """One SuperGLUE task: template, verbalizer, metric, and where its data lives.

    ``jsonl_fields`` maps a template field to its dotted path in the official
    JSONL when the two differ; the Hugging Face hub rows are flat and use the
    template names directly.
    """

    name: str
    folder: str
    template: str
    verbalizer: tuple[str, ...]
    metric: str = "accuracy"
    hub_config: str = ""
    jsonl_fields: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.verbalizer, self.metric, "classification", f"SuperGLUE {self.folder}")


TASKS: dict[str, SuperGlueTask] = {
    t.name: t
    for t in [
        SuperGlueTask("boolq", "BoolQ", "boolq passage: {passage} question: {question}", ("False", "True")),
        SuperGlueTask(
            "cb", "CB", "cb hypothesis: {hypothesis}. premise: {premise}",
            ("entailment", "contradiction", "neutral"), metric="cb",
        ),
        SuperGlueTask(
            "copa", "COPA", "copa choice1: {choice1} choice2: {choice2} premise: {premise} question: {question}",
            ("choice1", "choice2"),
        ),
        SuperGlueTask(
            "multirc", "MultiRC", "multirc question: {question} answer: {answer}. paragraph: {paragraph}",
            ("False", "True"), metric="multirc",
        ),
        SuperGlueTask("rte", "RTE", "rte sentence1: {premise} sentence2: {hypothesis}", ("entailment", "not_entailment")),
        SuperGlueTask(
            "wic", "WiC", "wic sentence1: {sentence1} sentence2: {sentence2} word: {word}", ("False", "True"),
        ),
        SuperGlueTask(
            "wsc", "WSC", "wsc text: {text} span1: {span1_text} span2: {span2_text}", ("Different", "Same"),
            hub_config="wsc.fixed",  # the hub's corrected span indices, as the authors' code uses
            jsonl_fields={"span1_text": "target.span1_text", "span2_text": "target.span2_text"},
        ),
    ]
}
SUPERGLUE: list[str] = register_suite("superglue", list(TASKS))

# One record before rendering: template fields, raw label, question group, and the row for error messages.
_Record = tuple[dict[str, str], object, "str | None", Row]


def label_id(task: SuperGlueTask, raw: object, row: Row) -> int:
    """Map an official label (bool, int id, or label word such as ``not_entailment``) to its id."""
    if isinstance(raw, bool):
        value = int(raw)
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw in task.verbalizer:
        value = task.verbalizer.index(raw)
    else:
        raise row.fail(f"label {raw!r} is not one of {list(task.verbalizer)} for task {task.name!r}")
    if not 0 <= value < len(task.verbalizer):
        raise row.fail(f"label {raw!r} is outside the {len(task.verbalizer)} labels {list(task.verbalizer)}")
    return value


def _template_fields(task: SuperGlueTask) -> list[str]:
    return [name for _, name, _, _ in Formatter().parse(task.template) if name]


def _records_flat(task: SuperGlueTask, rows: list[Row], paths: dict[str, str]) -> Iterator[_Record]:
    names = _template_fields(task)
    for row in rows:
        yield {n: str(row.get(paths.get(n, n))) for n in names}, row.get("label"), None, row


def _records_multirc_jsonl(rows: list[Row]) -> Iterator[_Record]:
    """Flatten the official nested MultiRC layout: one record per answer option."""
    for row in rows:
        paragraph, pidx = str(row.get("passage.text")), row.get("idx")
        for question in row.get("passage.questions"):
            q = Row(question, row.where, row.line)
            group = f"{pidx}-{q.get('idx')}"
            for answer in q.get("answers"):
                a = Row(answer, row.where, row.line)
                fields = {"question": str(q.get("question")), "answer": str(a.get("text")), "paragraph": paragraph}
                yield fields, a.get("label"), group, row


def _records_multirc_hub(rows: list[Row]) -> Iterator[_Record]:
    for row in rows:
        fields = {n: str(row.get(n)) for n in ("question", "answer", "paragraph")}
        yield fields, row.get("label"), f"{row.get('idx.paragraph')}-{row.get('idx.question')}", row


def render(task: SuperGlueTask, rows: list[Row], layout: str) -> list[Example]:
    """Rows in the ``jsonl`` (official release) or ``hub`` layout -> rendered examples."""
    if task.name == "multirc":
        records = _records_multirc_jsonl(rows) if layout == "jsonl" else _records_multirc_hub(rows)
    else:
        records = _records_flat(task, rows, task.jsonl_fields if layout == "jsonl" else {})
    examples = []
    for fields, raw, group, row in records:
        label = label_id(task, raw, row)
        text = task.template.format(**fields)
        examples.append(Example(text, label, task.verbalizer[label], task.name, group=group))
    return examples


def task_folder(task: SuperGlueTask, data_dir: str | Path) -> Path:
    """``<data_dir>/<Task>`` matched case-insensitively, or ``data_dir`` itself if it holds ``train.jsonl``."""
    root = Path(data_dir)
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.lower() == task.folder.lower():
                return child
        if (root / "train.jsonl").is_file():
            return root
    raise MeptError(
        f"SuperGLUE {task.folder} not found: expected {root / task.folder / 'train.jsonl'} "
        f"(the official release layout) or {root / 'train.jsonl'}"
    )


def _read_jsonl_splits(task: SuperGlueTask, data_dir: str | Path) -> tuple[list[Row], list[Row]]:
    folder = task_folder(task, data_dir)
    val = folder / "val.jsonl"
    if not val.is_file() and (folder / "validation.jsonl").is_file():
        val = folder / "validation.jsonl"
    return read_jsonl(folder / "train.jsonl"), read_jsonl(val)


def _read_hub_splits(task: SuperGlueTask) -> tuple[list[Row], list[Row]]:
    try:
        import datasets
    except ModuleNotFoundError:
        raise MeptError("source='hub' needs the `datasets` package (pip install 'mept[hub]'); "
                        "or pass data_dir with the official SuperGLUE JSONL files") from None
    config = task.hub_config or task.name
    try:
        ds = datasets.load_dataset("super_glue", config)
    except Exception as e:  # offline, renamed dataset, ...: one line, not a traceback
        raise MeptError(f"could not load super_glue/{config} from the hub ({type(e).__name__}: {e}); "
                        "pass data_dir with the official JSONL files instead") from None
    return tuple(  # type: ignore[return-value]
        [Row(dict(r), f"hub:super_glue/{config}/{split}", i + 1) for i, r in enumerate(ds[split])]
        for split in ("train", "validation")
    )


def load_superglue(name: str, source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
    """Load a SuperGLUE task as ``train`` / ``validation`` (seeded slice of train) / ``test`` (official val).

    ``source``: ``jsonl`` (official release under ``data_dir``), ``hub``
    (``datasets.load_dataset("super_glue", ...)``) or ``auto`` (jsonl when
    ``data_dir`` is given, else hub).
    """
    task = TASKS[name]
    if source == "auto":
        source = "jsonl" if data_dir else "hub"
    if source == "jsonl":
        if not data_dir:
            raise MeptError(f"task {name!r}: source='jsonl' needs data_dir (the SuperGLUE release folder)")
        train_rows, val_rows = _read_jsonl_splits(task, data_dir)
    elif source == "hub":
        train_rows, val_rows = _read_hub_splits(task)
    else:
        raise MeptError(f"task {name!r}: unknown source {source!r}; use 'auto', 'jsonl' or 'hub'")
    train = render(task, train_rows, source)
    split = grouped_split if task.name == "multirc" else stratified_split
    train, validation = split(train, VALIDATION_FRACTION, seed)
    return {"train": train, "validation": validation, "test": render(task, val_rows, source)}


for _task in TASKS.values():
    register_task(_task.spec, partial(load_superglue, _task.name))
