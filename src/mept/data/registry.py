"""Task registry: a task name maps to its spec and the function that loads it.

Each data module registers its tasks at import time with :func:`register_task`;
``mept.data`` imports them all, so ``get_task("rte")`` works from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mept.data.examples import Example
from mept.errors import MeptError

Splits = dict[str, list[Example]]  # "train", "validation" (and "test" where a source has one)


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its label words, how it is scored, and what kind of output it wants.

    ``verbalizer[i]`` is the word for label id ``i`` (empty for generation tasks).
    ``metric`` is one of ``accuracy``, ``cb`` (mean of macro-F1 and accuracy),
    ``multirc`` (F1a over answer options + exact match per question), ``squad``
    (EM/F1 over answer strings) or ``exact_match``.
    ``kind`` is ``classification``, ``generation`` or ``image``.
    """

    name: str
    verbalizer: tuple[str, ...] = ()
    metric: str = "accuracy"
    kind: str = "classification"
    description: str = ""


class Loader(Protocol):
    def __call__(self, source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits: ...


_TASKS: dict[str, tuple[TaskSpec, Loader]] = {}
_SUITES: dict[str, list[str]] = {}  # a suite name -> its member tasks, in training order


def register_task(spec: TaskSpec, loader: Loader, replace: bool = False) -> None:
    """Add a task under ``spec.name``. A taken name is refused unless ``replace`` (a custom file
    reloaded under its own name): a user's data must never silently stand in for a built-in task."""
    if spec.name in _TASKS and not replace:
        raise MeptError(f"task name {spec.name!r} is already taken ({_TASKS[spec.name][0].description or 'built in'}); "
                        f"pick another (--task-name)")
    _TASKS[spec.name] = (spec, loader)


def get_task(name: str) -> TaskSpec:
    if name not in _TASKS:
        raise MeptError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}")
    return _TASKS[name][0]


def load_task(name: str, source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
    """Load a registered task's splits; every split is checked to be non-empty."""
    get_task(name)
    return check_splits(name, _TASKS[name][1](source=source, data_dir=data_dir, seed=seed))


def check_source(task: str, source: str, allowed: tuple[str, ...] = ("auto", "bigbench")) -> None:
    """Offline-only tasks accept just the sources they can really be read from."""
    if source not in allowed:
        raise MeptError(f"task {task!r}: source {source!r} not supported; use one of {', '.join(allowed)}")


def check_splits(name: str, splits: Splits) -> Splits:
    """Refuse empty splits: training or scoring on nothing must never look like success."""
    for split, examples in splits.items():
        if not examples:
            raise MeptError(f"task {name!r}: split {split!r} is empty; check the data source")
    return splits


def task_names() -> list[str]:
    return sorted(_TASKS)


def register_suite(name: str, tasks: list[str]) -> list[str]:
    """Name a list of registered tasks as one suite (``--tasks NAME`` trains them as a mixture)."""
    _SUITES[name] = list(tasks)
    return list(tasks)


def suite_names() -> list[str]:
    return list(_SUITES)


def suite_tasks(name: str) -> list[str]:
    """Task names for a suite (``bb-superglue``, ``vader``, ...) or a single registered task."""
    if name in _SUITES:
        return list(_SUITES[name])
    if name in _TASKS:
        return [name]
    raise MeptError(f"unknown task {name!r}; tasks: {', '.join(task_names())}; suites: {', '.join(_SUITES)}")
