"""What a backbone is asked to do: the one list of task types (``--format``, the Auto class, the spec).

A ``str`` enum, so a member equals its plain name (``TaskType.CLS == "cls"``) and saves as it in JSON:
configs, saved adapters and callers that pass strings keep working.
"""

from __future__ import annotations

from enum import Enum

from mept.errors import MeptError


class TaskType(str, Enum):
    CLS = "cls"  # sequence classification: a head over the pooled sequence
    CAUSAL_LM = "causal_lm"  # decoder-only language modelling / generation
    SEQ2SEQ = "seq2seq"  # encoder-decoder text-to-text (T5)
    IMAGE_CLS = "image_cls"  # image classification (ViT)
    BASE = "base"  # the bare model, no task head

    def __str__(self) -> str:
        return self.value

    @property
    def auto_class(self) -> str:
        """The ``transformers`` Auto class that loads a model for this task."""
        return {
            TaskType.CLS: "AutoModelForSequenceClassification",
            TaskType.CAUSAL_LM: "AutoModelForCausalLM",
            TaskType.SEQ2SEQ: "AutoModelForSeq2SeqLM",
            TaskType.IMAGE_CLS: "AutoModelForImageClassification",
            TaskType.BASE: "AutoModel",
        }[self]

    @classmethod
    def parse(cls, value: str) -> "TaskType":
        try:
            return cls(value)
        except ValueError:
            raise MeptError(f"unknown task type {value!r}; use one of {', '.join(t.value for t in cls)}") from None


# What ``--format`` accepts: a task a run trains for, or "auto" (chosen from the tasks and the model).
FORMATS = ("auto", *(t.value for t in TaskType if t is not TaskType.BASE))
