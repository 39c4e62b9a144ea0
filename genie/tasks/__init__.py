"""Task registry; importing this package registers every built-in task."""

from genie.tasks.base import TASKS, Parsed, Target, Task, get_task, register
from genie.tasks import gmner, mner  # noqa: F401  (registers)

__all__ = ["TASKS", "Parsed", "Target", "Task", "get_task", "register"]
