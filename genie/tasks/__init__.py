"""Task registry; importing this package registers every built-in task."""

from genie.tasks import fmnerg, gmner, jmere, mner, mre  # noqa: F401  (registers)
from genie.tasks.base import TASKS, Parsed, Target, Task, get_task, register

__all__ = ["TASKS", "Parsed", "Target", "Task", "get_task", "register"]
