"""Generation tasks from BIG-bench: extractive QA (Disfl-QA, Quoref), MathQA and arithmetic.

QA and arithmetic examples have ``label = -1``, ``target`` the gold answer and
``answers`` every acceptable answer. MathQA is multiple choice, so it is
rendered as a five-way classification over the letters ``a``..``e``.

BIG-bench ships a single pool of examples per task, so we make the
train/validation split ourselves: seeded, validation 20% capped at 500,
train the rest capped at 4000. Examples that share a passage (or, for math,
the same question text) always land in the same split, otherwise validation
would reward memorising a passage seen in training.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from mept.data.bigbench import extract_tasks, read_task
from mept.data.examples import Example
from mept.data.registry import Splits, TaskSpec, check_source, register_task
from mept.data.splits import grouped_split

VAL_FRACTION = 0.2
MAX_VALIDATION = 500
MAX_TRAIN = 4000

MATHQA_LETTERS = ("a", "b", "c", "d", "e")
ARITHMETIC_SUBTASKS = tuple(
    f"arithmetic/{digits}_digit_{op}" for digits in (1, 2) for op in ("addition", "subtraction", "multiplication")
)

BB_DISFLQA = TaskSpec("bb-disflqa", (), "squad", "generation", "Disfl-QA: SQuAD questions with disfluencies")
BB_QUOREF = TaskSpec("bb-quoref", (), "squad", "generation", "Quoref coreference QA (natural_instructions subtask002)")
BB_MATHQA = TaskSpec("bb-mathqa", MATHQA_LETTERS, "accuracy", "classification", "MathQA word problems, 5 options")
BB_ARITHMETIC = TaskSpec("bb-arithmetic", (), "exact_match", "generation", "1-2 digit +, -, x questions")


def split_train_validation(examples: list[Example], seed: int) -> Splits:
    """Seeded grouped split: validation 20% capped at 500, train the rest capped at 4000.

    ``Example.group`` (the passage, or the question text) keeps examples that
    share it in one split; see :func:`mept.data.splits.grouped_split`.
    """
    train, validation = grouped_split(examples, VAL_FRACTION, seed, cap=MAX_VALIDATION)
    return {"train": train[:MAX_TRAIN], "validation": validation}


class _GroupIds:
    """Short stable group ids (``bb-quoref:17``) for long keys such as whole passages."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.ids: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        return self.ids.setdefault(key, f"{self.task}:{len(self.ids)}")


def _render_qa(question: str, context: str) -> str:
    return f"question: {question.strip()} context: {context.strip()}"


def _clean_answers(raw: Iterable[str], strip_period: bool = False) -> list[str]:
    """Non-empty answers, stripped and de-duplicated in order."""
    out: list[str] = []
    for answer in raw:
        answer = answer.strip()
        if strip_period and answer.endswith("."):
            answer = answer[:-1].rstrip()
        if answer and answer not in out:
            out.append(answer)
    return out


def _qa_split(
    task: TaskSpec,
    raw: list[dict[str, Any]],
    parse: Callable[[dict[str, Any]], tuple[str, str, list[str]] | None],
    seed: int,
) -> Splits:
    """Shared QA path: ``parse`` gives (question, context, answers) or None to drop the example."""
    examples: list[Example] = []
    group_id = _GroupIds(task.name)
    for item in raw:
        parsed = parse(item)
        if parsed is None:
            continue
        question, context, answers = parsed
        if not answers:
            continue  # unanswerable or empty gold: nothing to score against
        text = _render_qa(question, context) if context else question.strip()
        group = group_id(context or text)
        examples.append(Example(text=text, label=-1, target=answers[0], task=task.name, group=group, answers=answers))
    return split_train_validation(examples, seed)


# ---------------------------------------------------------------- Disfl-QA


DISFLQA_UNANSWERABLE = "unknown"  # the target BIG-bench gives SQuAD 2.0's unanswerable questions


def _context_tokenized(answer: str) -> str:
    """``design-build`` -> ``design - build``: Disfl-QA contexts are tokenized, its answers are not."""
    return " ".join(re.sub(r"([^\w\s])", r" \1 ", answer).split())


def _parse_disflqa(item: dict[str, Any]) -> tuple[str, str, list[str]]:
    """Input is ``{disfluent question} \\ncontext: {passage}``; target a string or a list.

    About a quarter of the targets are ``unknown`` (unanswerable); those
    examples are dropped. Where the gold answer only appears in the context in
    its tokenized form, that form is added as a second acceptable answer, so
    a model that copies the span from the context is scored as correct.
    """
    question, sep, context = item["input"].partition("\ncontext: ")
    if not sep:
        question, context = item["input"], ""  # unexpected layout: keep the input as is
    target = item.get("target", "")
    answers = [a for a in _clean_answers([target] if isinstance(target, str) else target) if a != DISFLQA_UNANSWERABLE]
    spans = [_context_tokenized(a) for a in answers if a not in context and _context_tokenized(a) in context]
    return question, context, _clean_answers(answers + spans)


def load_disflqa(seed: int = 0) -> Splits:
    return _qa_split(BB_DISFLQA, read_task("disfl_qa")["examples"], _parse_disflqa, seed)


# ---------------------------------------------------------------- Quoref


def _parse_quoref(item: dict[str, Any]) -> tuple[str, str, list[str]]:
    """Input is ``Passage: {passage}\\nQuestion: {question}``.

    Targets end in a sentence period the passage span lacks ("Catherine."),
    so the period is dropped to make the gold answer the extractive span.
    """
    text = item["input"]
    passage, sep, question = text.partition("\nQuestion: ")
    if sep:
        passage = passage.removeprefix("Passage: ")
    else:
        question, passage = text, ""
    return question, passage, _clean_answers(item.get("target", []), strip_period=True)


def load_quoref(seed: int = 0) -> Splits:
    raw = read_task("natural_instructions/subtask002_quoref_answer_generation")["examples"]
    return _qa_split(BB_QUOREF, raw, _parse_quoref, seed)


# ---------------------------------------------------------------- MathQA


def render_mathqa(question: str, choices: list[str]) -> str:
    options = " ".join(f"({letter}) {choice}" for letter, choice in zip(MATHQA_LETTERS, choices))
    return f"question: {question.strip()} options: {options}"


def load_mathqa(seed: int = 0) -> Splits:
    """MathQA with its five options rendered into the text; the label is the correct letter.

    BIG-bench stores the options as ``target_scores`` (option -> 0/1) in the
    original order. The ~2% of problems with other than five options are
    dropped so every example fits the fixed ``a``..``e`` verbalizer.
    """
    examples: list[Example] = []
    group_id = _GroupIds(BB_MATHQA.name)
    for item in read_task("elementary_math_qa/question_only")["examples"]:
        scores: dict[str, float] = item["target_scores"]
        choices = list(scores)
        correct = [i for i, c in enumerate(choices) if scores[c] == 1]
        if len(choices) != len(MATHQA_LETTERS) or len(correct) != 1:
            continue
        label = correct[0]
        examples.append(
            Example(
                text=render_mathqa(item["input"], choices),
                label=label,
                target=MATHQA_LETTERS[label],
                task=BB_MATHQA.name,
                group=group_id(item["input"].strip()),
                answers=[MATHQA_LETTERS[label]],
            )
        )
    return split_train_validation(examples, seed)


# ---------------------------------------------------------------- arithmetic


def load_arithmetic(seed: int = 0, subtasks: tuple[str, ...] = ARITHMETIC_SUBTASKS) -> Splits:
    """Pooled ``arithmetic/*`` questions such as ``What is 80 plus 29?`` with the number as target.

    Duplicate questions (1-digit tasks repeat pairs) share a group, so a
    question in validation never also appears in train.
    """
    extract_tasks(list(subtasks))  # one pass over the tarball for all subtasks
    examples: list[Example] = []
    group_id = _GroupIds(BB_ARITHMETIC.name)
    for subtask in subtasks:
        for item in read_task(subtask)["examples"]:
            answers = _clean_answers([item.get("target", "")])
            if not answers:
                continue
            text = item["input"].strip()
            examples.append(
                Example(
                    text=text, label=-1, target=answers[0], task=BB_ARITHMETIC.name, group=group_id(text), answers=answers
                )
            )
    return split_train_validation(examples, seed)


def _registered(spec: TaskSpec, load: Callable[[int], Splits]) -> Callable[..., Splits]:
    def loader(source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
        check_source(spec.name, source)
        return load(seed)

    return loader


register_task(BB_DISFLQA, _registered(BB_DISFLQA, load_disflqa))
register_task(BB_QUOREF, _registered(BB_QUOREF, load_quoref))
register_task(BB_MATHQA, _registered(BB_MATHQA, load_mathqa))
register_task(BB_ARITHMETIC, _registered(BB_ARITHMETIC, load_arithmetic))
