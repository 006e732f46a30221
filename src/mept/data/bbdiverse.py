"""``bb-diverse``: an offline mixture that a frozen small encoder can learn, of clearly different kinds.

The bb-superglue stand-ins sit at the majority class for a frozen 22M encoder (a linear probe
of its features does no better), so no method can be told apart on them. These seven BIG-bench
tasks were chosen by measurement (``benchmarks/select_tasks.py``, table in
``benchmarks/studies/mixture_tasks.md``): a logistic-regression probe of frozen mean-pooled features beats
the majority class by >= 10 points on MiniLM or MPNet, so the features carry the label and a
prompt has something to learn. They differ in kind -- intents of spoken requests, SVG paths of
shapes, step-by-step navigation, conversational implicature, bracket sequences, the sentiment
of review sentences, claims to fact-check -- which gives a router inputs worth sending down
different paths. ``bb-mnist`` (digits drawn in ASCII) passes the probe test too but is left out
of the suite: its inputs are 130-340 tokens (4x the others' cost per example) and it did not
move off chance in a 300-step mixture run; it stays available as a task.

Each input gets a short task prefix (as the SuperGLUE templates do) so one prompt set can tell
the tasks apart; labels are the task's own answer words. Splits as in bb-superglue: a seeded
20%-per-label validation slice (at most 300) and the rest for training; the two large tasks
are sampled to 1,000 examples so no task dominates the mixture.
"""

from __future__ import annotations

from typing import Any

from mept.data.bbsuite import BigBenchTask, Parsed, _best, _squash, register_bigbench_tasks

INTENTS = ("add_to_playlist", "book_restaurant", "get_weather", "play_music", "search_screening_event",
           "search_creative_work", "rate_book")
SHAPES = ("circle", "heptagon", "hexagon", "kite", "line", "octagon", "pentagon", "rectangle", "sector",
          "triangle")
DIGITS = tuple("0123456789")


def _choice_of(words: tuple[str, ...], strip: str = ""):
    """Label = the top-scored BIG-bench choice; ``strip`` removes a constant cue at the end of inputs."""

    def parse(example: dict[str, Any]) -> Parsed:
        text = example["input"]
        if strip and text.rstrip().endswith(strip):
            text = text.rstrip()[: -len(strip)]
        best = _best(example)
        return (_squash(text), words.index(best), None) if best in words else None

    return parse


def _parse_intent(example: dict[str, Any]) -> Parsed:
    text = example["input"].removeprefix("Utterance:").strip()
    return _squash(text), INTENTS.index(_best(example)), None


SENTIMENTS = ("negative", "neutral", "ambivalent", "positive")
FEVER_CUE = "Q: Was this claim true or false?"


def _parse_fever(example: dict[str, Any]) -> Parsed:
    # "On June 2017, the following claim was made: <claim>\nQ: Was this claim true or false?"
    text = example["input"].replace(FEVER_CUE, "").split("the following claim was made:", 1)[-1]
    return _squash(text), ("false", "true").index(_best(example)), None


TASKS = [
    BigBenchTask("bb-intent", "intent_recognition", "intent:", INTENTS, _parse_intent),
    BigBenchTask("bb-shapes", "geometric_shapes", "shape:", SHAPES, _choice_of(SHAPES, strip="draws a")),
    BigBenchTask("bb-navigate", "navigate", "navigate:", ("False", "True"), _choice_of(("False", "True"))),
    BigBenchTask("bb-implicatures", "implicatures", "implicature:", ("no", "yes"), _choice_of(("no", "yes"))),
    BigBenchTask("bb-parens", "cs_algorithms/valid_parentheses", "brackets:", ("Invalid", "Valid"),
                 _choice_of(("Invalid", "Valid"))),
    BigBenchTask("bb-sentiment", "multiemo/reviews_sentence_en", "sentiment:", SENTIMENTS, _choice_of(SENTIMENTS),
                 max_examples=1000),
    BigBenchTask("bb-fever", "fact_checker/fever", "claim:", ("false", "true"), _parse_fever, max_examples=1000),
]
BB_DIVERSE = register_bigbench_tasks(TASKS, "bb-diverse")
register_bigbench_tasks([BigBenchTask("bb-mnist", "mnist_ascii", "digit:", DIGITS, _choice_of(DIGITS), max_examples=1000)])
