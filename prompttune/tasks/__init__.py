"""The task registry: importing this package registers every task module."""

from __future__ import annotations

from prompttune.tasks import boolq, cb, copa, multirc, record, rte, sst2, wic, wsc  # noqa: F401 (registration)
from prompttune.tasks.base import TASKS, Example, Task

__all__ = ["TASKS", "Example", "Task", "get_task"]


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name raises a one-line error listing the known ones."""
    return TASKS.get(name)
