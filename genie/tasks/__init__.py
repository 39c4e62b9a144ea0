"""Task registry. Importing this package imports every module in it, and each task module
registers its task: adding a task is adding a module here (or calling `register` from outside)."""

import importlib
import pkgutil

from genie.tasks.base import TASKS, Parsed, Target, Task, get_task, register

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["TASKS", "Parsed", "Target", "Task", "get_task", "register"]
