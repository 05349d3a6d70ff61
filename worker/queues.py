"""Task names and queues: one queue per pipeline stage, so Flower and /metrics show each stage's backlog. What each
task is (its queue, arguments and step) is the step registry's (``worker.registry``).
"""

from __future__ import annotations

from enum import Enum


class Queue(str, Enum):
    ADMIT = "admit"  # a stored batch (or retried items) entering the pipeline; a selector's listing pages
    VALIDATE = "validate"  # the image and key rules checked against IMS and KMS
    SUBMIT = "submit"  # the copy call, once the item holds one of its account's slots
    POLL = "poll"  # IMS job status polls, each a short countdown, never a sleep
    FOLLOWUP = "followup"  # what happens to an active copy: its tags, then its sharing (no replication slot)
    MAINTENANCE = "maintenance"  # the reconciler, the retention sweep, policies' runs, timed slot grants, probes


class TaskName(str, Enum):
    ADMIT = "replication.admit"
    EXPAND = "replication.expand"  # one listing page of a batch's selector made into items
    PLAN = "replication.plan"  # one stage of a plan (dry run): verdicts, a selector's page, quota and forecast
    VALIDATE = "replication.validate"
    SUBMIT = "replication.submit"
    POLL = "replication.poll"
    TAG = "replication.tag"
    SHARE = "replication.share"
    DISTRIBUTE = "replication.distribute"  # a distribution's receiver items made, then awaited (its last follow-up)
    RECONCILE = "replication.reconcile"
    EXPIRE_BATCHES = "replication.expire_batches"
    GRANT = "replication.grant"
    PROBE = "replication.probe"
    CHECK = "replication.check"
    NEW_IMAGES = "replication.new_images"  # the new images of an account's copies whose jobs ended, seen in one listing
    START_RUNS = "replication.start_runs"  # the standing policies' due runs, each started once cluster-wide
    RETIRE = "replication.retire"  # a policy run's retention: the copies its rule no longer keeps reported or deleted


ALL_QUEUES = [q.value for q in Queue]

# What a worker takes first when several stage queues hold messages (``worker.broker.MessageQueues``): what keeps a
# slot busy (a granted copy's call, a poll that sees a copy end and hands its slot on), then the reconciler, timed
# grants and the probes that end an outage, then follow-ups, and last the validation of items that would only wait
# for a slot: in turn, a big batch's admit chunks kept slot hand-offs waiting behind their validation.
TAKEN_FIRST = [Queue.SUBMIT, Queue.POLL, Queue.MAINTENANCE, Queue.FOLLOWUP, Queue.VALIDATE, Queue.ADMIT]


_RANKS = {q.value: n for n, q in enumerate(TAKEN_FIRST)}


def taken_rank(queue: str) -> int:
    """A queue's place in ``TAKEN_FIRST``; any other queue after them."""
    return _RANKS.get(queue, len(TAKEN_FIRST))
