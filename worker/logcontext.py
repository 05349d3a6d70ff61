"""What a worker's log record is about: the Celery task running in this process (name and ID) and the batch and
item it works on (its arguments), added to every record so that the text and JSON formats can show them."""

from __future__ import annotations

import logging

from celery import current_task


class TaskContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        task = current_task  # a proxy: false outside a task
        if task and task.request.id:
            kwargs = task.request.kwargs or {}
            context = {
                "task_name": task.name,
                "task_id": task.request.id,
                "batch_id": kwargs.get("batch_id"),
                "item_id": kwargs.get("item_id"),
            }
            for name, value in context.items():
                if value is not None and getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True
