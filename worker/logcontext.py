"""What a worker's log record is about: the Celery task running in this process (name and ID) and the batch and
item it works on (its arguments, or the item of a bundle whose step runs: ``working_on``), added to every record so
that the text and JSON formats can show them."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from celery import current_task

_ITEM: ContextVar[str | None] = ContextVar("item", default=None)
_TASK: ContextVar[tuple[str, str, Mapping[str, object]] | None] = ContextVar("task", default=None)


@contextmanager
def working_on(item_id: str | None) -> Iterator[None]:
    """Records logged meanwhile are about ``item_id`` (one item of a message that carries several)."""
    token = _ITEM.set(item_id)
    try:
        yield
    finally:
        _ITEM.reset(token)


@contextmanager
def running_task(name: str, task_id: str, kwargs: Mapping[str, object]) -> Iterator[None]:
    """Records logged meanwhile, on this thread or on the step threads it hands work to (which run in a copy of its
    context; Celery's ``current_task`` is per thread), are about this task."""
    token = _TASK.set((name, task_id, kwargs))
    try:
        yield
    finally:
        _TASK.reset(token)


class TaskContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        found = _TASK.get()
        task = current_task  # a proxy: false outside a task
        if found is None and task and task.request.id:
            found = (task.name, task.request.id, task.request.kwargs or {})
        if found is not None:
            name, task_id, kwargs = found
            context = {
                "task_name": name,
                "task_id": task_id,
                "batch_id": kwargs.get("batch_id"),
                "item_id": _ITEM.get() or kwargs.get("item_id"),
            }
            for name, value in context.items():
                if value is not None and getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True
