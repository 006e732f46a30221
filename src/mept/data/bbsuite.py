"""``bb-superglue``: an offline stand-in for SuperGLUE built from BIG-bench tasks.

SuperGLUE needs a download; BIG-bench, once set up (``MEPT_BIGBENCH_TAR``), is read offline, so each
SuperGLUE family gets one BIG-bench task of the same shape (NLI, pronoun
reasoning, yes/no QA, multiple choice, answer verification) rendered with that
family's prefix as in the MEPT authors' code (T5's SuperGLUE prefixes, ``rte {input}``), so a multi-task prompt sees
the same task cues it would on SuperGLUE.

Label order follows the SuperGLUE family (RTE/CB: entailment first; yes/no
families: the negative word first so label 1 means "true"/"correct", which is
the positive class MultiRC's F1a scores).

BIG-bench has no train/test split, so ``validation`` is a seeded 20%-per-label
slice capped at 300 examples and ``train`` is the rest. The task files carry a
do-not-train canary: they are read from the cache, never copied into the repo.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from mept.data.bigbench import read_task
from mept.data.examples import Example
from mept.data.registry import Splits, TaskSpec, check_source, register_suite, register_task
from mept.data.splits import grouped_split, stratified_split

VALIDATION_FRACTION = 0.2
VALIDATION_CAP = 300

# (text, label id, group) before the Example is built; None drops a malformed record.
Parsed = tuple[str, int, "str | None"] | None


def _squash(text: str) -> str:
    return " ".join(text.split())


def _best(example: dict[str, Any]) -> str:
    scores = example["target_scores"]
    return max(scores, key=scores.get)


def _by_target_scores(words: tuple[str, ...]) -> Callable[[dict[str, Any]], Parsed]:
    """Label = the BIG-bench choice with the top score, mapped to our verbalizer order."""

    def parse(example: dict[str, Any]) -> Parsed:
        return _squash(example["input"]), words.index(_best(example)), None

    return parse


def _parse_cb(example: dict[str, Any]) -> Parsed:
    # Every input ends in the prompt "The answer is: ", which is BIG-bench's cue, not content.
    text = re.sub(r"\s*The answer is:\s*$", "", example["input"])
    return _squash(text), ("entailment", "contradiction", "neutral").index(_best(example)), None


def _parse_boolq(example: dict[str, Any]) -> Parsed:
    # strategyqa's ``target`` is "Yes. <explanation>" / "No. <explanation>"; target_scores is optional.
    answer = str(example.get("target", "")).strip().lower()
    if answer.startswith("yes"):
        return _squash(example["input"]), 1, None
    if answer.startswith("no"):
        return _squash(example["input"]), 0, None
    if "target_scores" in example:
        return _squash(example["input"]), int(_best(example).lower() == "yes"), None
    return None


def _parse_copa(example: dict[str, Any]) -> Parsed:
    choices = list(example["target_scores"])
    if len(choices) != 3:  # a handful of social_iqa items have two options; the template needs three
        return None
    body = " ".join(f"choice{i + 1}: {_squash(c)}" for i, c in enumerate(choices))
    return f"{body} premise: {_squash(example['input'])}", choices.index(_best(example)), None


def _parse_multirc(example: dict[str, Any]) -> Parsed:
    # Input is "Paragraph- ... \nQuestion: ... \nCorrect Answer: ..."; target is ["Yes."] or ["No."].
    target = example["target"]
    word = (target[0] if isinstance(target, list) else target).strip().rstrip(".").lower()
    if word not in ("yes", "no"):
        return None
    text = example["input"]
    group = text.rsplit("Correct Answer:", 1)[0]  # paragraph + question: the options of one question
    return _squash(text), int(word == "yes"), _squash(group)


@dataclass(frozen=True)
class BigBenchTask:
    """One suite member: its BIG-bench source, the SuperGLUE family prefix, labels and parser."""

    name: str
    source: str
    prefix: str
    verbalizer: tuple[str, ...]
    parse: Callable[[dict[str, Any]], Parsed]
    metric: str = "accuracy"
    max_examples: int | None = None  # a seeded sample of very large tasks (mnist_ascii has 70,000)

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.verbalizer, self.metric, "classification", f"BIG-bench {self.source}")


TASKS: dict[str, BigBenchTask] = {
    t.name: t
    for t in [
        BigBenchTask("bb-rte", "epistemic_reasoning", "rte", ("entailment", "non-entailment"),
                     _by_target_scores(("entailment", "non-entailment"))),
        BigBenchTask("bb-cb", "presuppositions_as_nli", "cb", ("entailment", "contradiction", "neutral"),
                     _parse_cb, metric="cb"),
        BigBenchTask("bb-wsc", "winowhy", "wsc", ("incorrect", "correct"),
                     _by_target_scores(("incorrect", "correct"))),
        BigBenchTask("bb-boolq", "strategyqa", "boolq", ("no", "yes"), _parse_boolq),
        BigBenchTask("bb-copa", "social_iqa", "copa", ("choice1", "choice2", "choice3"), _parse_copa),
        BigBenchTask("bb-multirc", "natural_instructions/subtask056_multirc_classify_correct_answer", "multirc",
                     ("no", "yes"), _parse_multirc, metric="multirc"),
    ]
}
BB_SUPERGLUE: list[str] = list(TASKS)


def build_examples(task: BigBenchTask) -> list[Example]:
    """Every usable example of the task (or a seeded sample of ``max_examples``), rendered with its prefix."""
    examples = []
    groups: dict[str, str] = {}
    records = read_task(task.source)["examples"]
    if task.max_examples is not None and len(records) > task.max_examples:
        keep = sorted(random.Random(0).sample(range(len(records)), task.max_examples))
        records = [records[i] for i in keep]
    for raw in records:
        parsed = task.parse(raw)
        if parsed is None:
            continue
        text, label, group = parsed
        if group is not None:  # short stable ids, numbered by first appearance
            group = groups.setdefault(group, str(len(groups)))
        examples.append(Example(f"{task.prefix} {text}", label, task.verbalizer[label], task.name, group=group))
    return examples


def register_bigbench_tasks(tasks: list[BigBenchTask], suite: str | None = None) -> list[str]:
    """Add tasks to the registry (and, if named, as one suite); returns their names."""
    for task in tasks:
        TASKS[task.name] = task
        register_task(task.spec, partial(load_bigbench_task, task.name))
    names = [t.name for t in tasks]
    if suite is not None:
        register_suite(suite, names)
    return names


def load_bigbench_task(name: str, source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
    """``train`` / ``validation`` for one suite task; ``data_dir`` is unused (the tarball is cached)."""
    check_source(name, source)
    task = TASKS[name]
    split = grouped_split if task.metric == "multirc" else stratified_split
    train, validation = split(build_examples(task), VALIDATION_FRACTION, seed, cap=VALIDATION_CAP)
    return {"train": train, "validation": validation}


register_bigbench_tasks(list(TASKS.values()), "bb-superglue")
register_suite("all", BB_SUPERGLUE)
