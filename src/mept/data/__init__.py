"""Tasks, templates and metrics.

Importing this package registers every task (each module calls
``register_task`` at import), so ``get_task("rte")`` and ``load_task("bb-cb")``
work from anywhere. Image and generation tasks live in optional modules that
may not exist in every checkout; only their absence is tolerated.
"""

from mept.data import bbdiverse, bbsuite, custom, superglue, vader  # noqa: F401  (imported to register tasks)
from mept.data.bbdiverse import BB_DIVERSE
from mept.data.bbsuite import BB_SUPERGLUE
from mept.data.custom import load_custom
from mept.data.examples import Example
from mept.data.metrics import compute_metrics
from mept.data.registry import Splits, TaskSpec, get_task, load_task, suite_names, suite_tasks, task_names
from mept.data.superglue import SUPERGLUE
from mept.data.vader import VADER

try:
    from mept.data import images  # noqa: F401
except ModuleNotFoundError as e:
    if e.name != "mept.data.images":
        raise
try:
    from mept.data import generation  # noqa: F401
except ModuleNotFoundError as e:
    if e.name != "mept.data.generation":
        raise

__all__ = [
    "BB_DIVERSE",
    "BB_SUPERGLUE",
    "SUPERGLUE",
    "Example",
    "Splits",
    "TaskSpec",
    "VADER",
    "compute_metrics",
    "get_task",
    "load_custom",
    "load_task",
    "suite_names",
    "suite_tasks",
    "task_names",
]
