"""Sends pipeline messages by task name to their queues (``worker.registry``); the API never imports the Celery
tasks (``worker.tasks``)."""

from __future__ import annotations

import logging

import celery

from config.celery import celery_config
from config.settings import Settings
from worker.data import unavailable
from worker.pressure import REFUSALS
from worker.queues import TaskName
from worker.registry import ROUTES

log = logging.getLogger(__name__)

# A stored batch is safe in Redis whatever happens here, so publishing gives up quickly rather than hold the request.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class Enqueuer:
    def __init__(self, settings: Settings) -> None:
        self.app = celery.Celery("imsrep-api", set_as_current=False)
        self.app.conf.update(celery_config(settings))

    def send_admit(self, batch_id: str) -> bool:
        """Ask the workers to take the batch's ``accepted`` items into the pipeline; False if it was not sent.

        Never raises: the items are already stored, and the reconciler admits ``accepted`` items that stay
        unadmitted, so a lost message delays them but loses nothing.
        """
        return self._send(TaskName.ADMIT, batch_id, "the reconciler will admit its items")

    def send_expand(self, batch_id: str) -> bool:
        """Ask the workers to list the images the batch's selector selects, from the first page. Never raises:
        the reconciler sends a selection that makes no progress again."""
        return self._send(TaskName.EXPAND, batch_id, "the reconciler will start its selection")

    def send_plan(self, plan_id: str, stage: str) -> bool:
        """Ask the workers to work a stored plan out. Never raises: the reconciler resends a plan that makes no
        progress."""
        kwargs = {"plan_id": plan_id, "stage": stage, "marker": ""}
        return self._send(TaskName.PLAN, plan_id, "the reconciler will start it", kwargs)

    def _send(self, task: TaskName, subject: str, fallback: str, kwargs: dict[str, str] | None = None) -> bool:
        what = task.value.rsplit(".", 1)[1]  # "admit message for batch ...": what an operator searches the log for
        kwargs = kwargs or {"batch_id": subject}
        subject = subject if "plan_id" in kwargs else f"batch {subject}"
        try:
            self.app.send_task(
                task.value,
                kwargs=kwargs,
                queue=ROUTES[task].value,
                retry_policy=_PUBLISH_RETRY,
            )
        except Exception as exc:  # noqa: BLE001 - any failure here must not turn a stored request into an error
            if unavailable(exc.__cause__ or exc):  # one line per episode of Redis refusing writes
                REFUSALS.refused(f"{what} message for {subject} not sent", exc)
            else:
                log.error("%s message for %s not sent (%s); %s", what, subject, exc, fallback)
            return False
        return True

    def send_runs(self) -> None:
        """Ask a worker to start the policies' due runs now rather than at beat's next tick (run now)."""
        self.app.send_task(TaskName.START_RUNS.value, queue=ROUTES[TaskName.START_RUNS].value)

    def send_check(self, account: str) -> None:
        """Ask a worker to check the account's credentials with one signed read (the API never calls IMS)."""
        self.app.send_task(TaskName.CHECK.value, kwargs={"account": account}, queue=ROUTES[TaskName.CHECK].value)

    def close(self) -> None:
        self.app.close()
