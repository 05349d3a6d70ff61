"""Admit: the batch's ``accepted`` items enter the pipeline, a chunk per task so a 10,000-item batch stays fast.

Chunks are taken account by account (``RecordStore.admission_ids``: a batch over many projects is stored in the
order given, often interleaved), and each chunk's items are validated together, account by account
(``validate_many``: one listing page answers up to 500 of them, where one task and one IMS call per item would
crawl through a big batch); a few items of an account, and any the listing does not answer, get a validate task
each. The chunks of one pass share the walk of each account's listing (``worker.data.walks``): a chunk looks first
among the pages the pass has walked, and walks on from where it stopped; the pass's first chunk starts afresh
and its last one forgets the walk.

Also what the API sends after a user's "retry" (failed -> accepted): only items still ``accepted`` are taken, so
sending admit twice, or for a batch half under way, validates nothing twice that has moved on. Items of an account
in an outage stay ``accepted``; when the chain reaches the batch's end with some left, it starts again from the
first chunk after a while, and ends only when none is left. The chain's progress (``admit_progress``) is what
the reconciler watches: one lost chunk is one message to resend, never one per item.
"""

from __future__ import annotations

from collections import defaultdict

from worker.domain.item import ReplicationItem
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.validate import validate_many

CHUNK = 500


def admit(ctx: StepContext, batch_id: str, cursor: int = 0, held: int = 0) -> list[Next]:
    """Validate one chunk of the batch's accepted items, then an admit task for the next chunk. ``held`` counts
    items this pass of the chain left accepted (their account in an outage)."""
    records = ctx.data.records
    if cursor == 0:  # a new pass over the batch: its chunks' listing walk starts from the first page
        ctx.data.walks.forget(batch_id)
    ids = records.admission_ids(batch_id, cursor, cursor + CHUNK - 1)
    by_account: dict[str, list[ReplicationItem]] = defaultdict(list)
    for item in records.get_items(ids):
        if item.state is ItemState.ACCEPTED:
            by_account[item.account].append(item)
    nexts: list[Next] = []
    # Each account's listing waits on the cloud: side by side, a chunk of 50 accounts at 150 ms is one call's wait.
    groups = list(by_account.values())
    for items, dispatched in zip(groups, ctx.each(lambda i: validate_many(ctx, i), groups), strict=True):
        if dispatched is None:
            held += len(items)
        else:
            nexts += dispatched
    if len(ids) == CHUNK:
        return [Next(TaskName.ADMIT, {"batch_id": batch_id, "cursor": cursor + CHUNK, "held": held}), *nexts]
    ctx.data.walks.forget(batch_id)  # the pass is over: its pages would only take Redis memory until they expire
    if held:  # another pass over the batch later, for the items an outage held back
        return [Next(TaskName.ADMIT, {"batch_id": batch_id, "cursor": 0}, ctx.settings.retry_max_delay), *nexts]
    records.admit_done(batch_id)
    return nexts
