"""The pipeline's steps, testable without Celery: each loads the item, does one step, records the transition via
the data layer and returns the tasks to send next (``Next``); ``worker.dispatch`` runs them (``worker.registry``
says which task runs which step) and sends what they return.

Every step is idempotent under redelivery: transitions are conditional, and a step that finds its item already
past it does nothing.
"""

from worker.steps.admit import admit
from worker.steps.context import Next, StepContext, expect
from worker.steps.credentials import check_credentials
from worker.steps.followup import followup, give_up
from worker.steps.new_images import see_new_images
from worker.steps.outcomes import finish
from worker.steps.plan import plan
from worker.steps.poll import poll
from worker.steps.probe import probe
from worker.steps.reconcile import reconcile
from worker.steps.retention import expire_batches
from worker.steps.retire import retire
from worker.steps.runs import start_runs
from worker.steps.scheduling import grant
from worker.steps.select import expand
from worker.steps.submit import submit
from worker.steps.validate import validate

__all__ = [
    "Next",
    "StepContext",
    "admit",
    "check_credentials",
    "see_new_images",
    "expand",
    "expect",
    "expire_batches",
    "finish",
    "followup",
    "give_up",
    "plan",
    "grant",
    "poll",
    "probe",
    "reconcile",
    "retire",
    "start_runs",
    "submit",
    "validate",
]
