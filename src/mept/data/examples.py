"""The one record type every data source produces and every trainer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Example:
    """One rendered example.

    ``text`` is the input after the task's template was applied (what a
    text-to-text model reads). ``label`` indexes the task's verbalizer for
    classification tasks and is ``-1`` for free generation (QA, math answers).
    ``target`` is the string a text-to-text / causal model must produce: the
    verbalizer word, or the gold answer. ``answers`` holds every acceptable
    answer for QA metrics. ``group`` ties MultiRC answer options to their
    question for exact match. ``image`` is a PIL image for vision tasks.
    """

    text: str
    label: int
    target: str
    task: str
    group: str | None = None
    answers: list[str] = field(default_factory=list)
    image: object | None = None
    text_pair: str | None = None  # a sentence pair's second text, encoded as the tokenizer encodes pairs
