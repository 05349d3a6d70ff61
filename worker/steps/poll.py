"""Poll: follow the IMS job (or, for an adopted copy, the new image) to a terminal state, one short task at a time.

Each poll is due about when the job should end, clamped to [``poll_min_interval``, ``poll_max_interval``]; a task
never sleeps. The first one is due when the account's finished copies of that size say (``forecast``; before any
has finished, after ``poll_initial_delay``); a later one when ``process_percent`` says. Either aims a little past
the predicted end: an early poll costs a call and ``poll_min_interval`` more, a late one only that little (a
forecast's poll as little as its copies have been late, ``LEAST_MARGIN``). Copies
started together with no forecast (a grant's) share that first look: one of them is read, the others go by its
reading (``SIBLINGS``).

After ``SUCCESS`` the new image must be ``active`` before the item succeeds (Terraform's check too); the slot is
freed at once, since a finished job no longer counts against the project's copies. An in-region copy's image is
looked at with the account's other copies that end about then (``worker.steps.new_images``), unless it is short. A
cross-region copy's job is polled in the source region and its image looked at in the destination (Terraform does
the same).
An active copy with tags or sharing to apply moves on to its follow-ups (``worker.steps.followup``). Each poll
carries a sequence number; only the task whose number matches the item's ``poll_seq`` may schedule the next one, so
a duplicate ends the extra chain instead of doubling the polling for the rest of the copy.

A poll that Redis hands out again after its worker died (``redelivered``) may carry an old number: that worker may
have claimed the next number and died before sending the next poll, so the chain would end with nobody polling. Such
a poll takes over the chain at the current number; if the next poll was sent after all, the claim (compare-and-set)
lets only one of the two go on, so the chain is never doubled.
"""

from __future__ import annotations

from dataclasses import replace

from worker.data.accounts import Reading
from worker.domain.item import ReplicationItem
from worker.domain.pools import pool_name_of
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.errors import PermanentError, RetryableError
from worker.ims.client import ImsClient
from worker.ims.models import GONE
from worker.queues import TaskName
from worker.steps import forecast
from worker.steps.context import Next, StepContext, hand_on_now
from worker.steps.followup import copied
from worker.steps.new_images import see_later
from worker.steps.outcomes import fail_permanently, finish, release_slot, retry_later

END_MARGIN = 0.02  # share of a predicted wait added, so the poll lands just after the end rather than before it
# A poll due at a forecast end adds only as much as the pool's latest copies ran past their estimates, within
# [LEAST_MARGIN, END_MARGIN]: copies that keep to their forecast are handed on sooner (0.01 s after a 2 s copy).
LEAST_MARGIN = 0.005
PERCENT_STEP = 0.005  # half the step of process_percent (hundredths): its low end is assumed, for the same reason
# Below this share done, one step of process_percent is more than a tenth of it: an end reckoned from it may be
# far too late (1 % after 1 s of a 60 s copy reads as 100 s), so the next poll goes at the earliest end it allows.
COARSE_FRACTION = 0.1
# Copies of a pool with no forecast yet, of one size and started within this many seconds of each other (a grant's),
# share the first look at one of them (``P:reading:<pool>``, kept READING_TTL seconds). A copy that failed at once
# is then seen failed at its second look.
SIBLINGS = 1.0
READING_TTL = 10.0


def poll(
    ctx: StepContext, item_id: str, seq: int, *, redelivered: bool = False, first_look: bool = False
) -> list[Next]:
    """One look at the item's copy. ``first_look``: the copy's first poll, sent with no forecast to go by (a
    grant's copies share it: ``SIBLINGS``)."""
    item = ctx.data.records.get_item(item_id)
    if item is None:
        return []
    if item.state is not ItemState.REPLICATING:
        return release_slot(ctx, item) if item.state.terminal else []
    current = item.poll_seq or 0
    if seq != current:
        if not redelivered:
            return []  # a duplicate of a poll that has already run
        seq = current
    try:
        client = ctx.client(item.account)
        copies = ctx.destination(item)  # where the new image is: the account's project or a cross-region destination
        if item.job_id and not item.new_image_id:
            return _follow_job(ctx, client, copies, item, seq, first_look=first_look and seq == 0)
        return _follow_image(ctx, copies, item, item.new_image_id or "", seq, after_job=item.job_done)
    except PermanentError as error:
        return fail_permanently(ctx, item, error, ItemState.FAILED)
    except RetryableError as error:
        # A copy IMS accepted fails only by IMS's own word or its deadline, never because polls did not get through.
        if (late := _past_deadline(ctx, item)) is not None:
            return late
        if not _claim(ctx, item, seq):
            return []
        return retry_later(ctx, item, error, TaskName.POLL, budget=False, seq=seq + 1)


def _follow_job(
    ctx: StepContext, client: ImsClient, copies: ImsClient, item: ReplicationItem, seq: int, *, first_look: bool
) -> list[Next]:
    pool = pool_name_of(item)
    first_look = first_look and item.job_started_at is not None
    if first_look and (wait := _from_siblings(ctx, item, pool)) is not None:
        return _again(ctx, item, seq, wait)
    job = client.get_job_progress(item.job_id or "")  # a job of the source region, whatever the copy's
    if job.failed:
        detail = ": ".join(part for part in (job.error_code, job.fail_reason) if part) or "no reason given"
        return finish(
            ctx,
            item,
            ItemState.FAILED,
            reason=ReasonCode.IMS_JOB_FAILED,
            message=f"IMS job {item.job_id} failed: {detail}",
        )
    if job.succeeded:
        if not job.image_id:
            return finish(
                ctx,
                item,
                ItemState.FAILED,
                reason=ReasonCode.COPY_NOT_ACTIVE,
                message=f"IMS job {item.job_id} succeeded without naming the new image",
            )
        # A finished job no longer counts against the project's copies. The slot goes first: an item whose job is
        # recorded done holds none (``job_done``), so a crash in between leaves the slot to the poll redelivered.
        # Its next copy starts now, not after the image read and the verdict below.
        nexts = hand_on_now(release_slot(ctx, item))
        # Remember the image, so the following polls (if it is not active yet) look at it, not at the job.
        ctx.data.records.update_if(item.id, ItemState.REPLICATING, new_image_id=job.image_id, progress=1.0)
        item = item.model_copy(update={"new_image_id": job.image_id, "progress": 1.0})  # as stored
        forecast.record(ctx, pool_name_of(item), item.source_size, job)
        if item.target_region is None and (check := see_later(ctx, item)) is not None:
            return nexts + check  # looked at with the account's other copies that end about now
        return nexts + _follow_image(ctx, copies, item, job.image_id, seq, after_job=True)
    fraction = _fraction(job.entities.process_percent)
    elapsed = ctx.clock() - (item.job_started_at or ctx.clock())
    if fraction is not None:
        ctx.data.records.update_if(item.id, ItemState.REPLICATING, progress=fraction)
        if first_look and elapsed > 0:  # for the copies started with it
            reading = Reading(item.job_started_at or 0.0, item.source_size, fraction, elapsed)
            ctx.data.accounts.record_reading(pool, reading, READING_TTL)
    return _again(ctx, item, seq, _remaining(ctx, item, fraction, elapsed))


def _from_siblings(ctx: StepContext, item: ReplicationItem, pool: str) -> float | None:
    """The wait of a copy's first look taken from another copy's: copies of one size started together (one grant)
    progress alike, so one job's early reading serves them all, and theirs make no call. None: no such reading."""
    reading = ctx.data.accounts.reading(pool)
    started = item.job_started_at or 0.0
    if reading is None or reading.size != item.source_size or abs(reading.started - started) > SIBLINGS:
        return None
    elapsed = ctx.clock() - started
    return _remaining(ctx, item, min(reading.fraction * elapsed / reading.elapsed, 0.999), elapsed)


def first_poll(ctx: StepContext, item: ReplicationItem) -> Next:
    """A new copy's first poll: due at its forecast end, or after ``poll_initial_delay`` with nothing to go by
    (then a first look, which the copies started with it share)."""
    expected = forecast.forecast(ctx, pool_name_of(item), item.source_size)
    if expected is None:
        return Next.for_item(TaskName.POLL, item, ctx.settings.poll_initial_delay, seq=0, first_look=1)
    countdown = _countdown(ctx, expected.seconds, min(END_MARGIN, max(LEAST_MARGIN, expected.late)))
    return Next.for_item(TaskName.POLL, item, countdown, seq=0)


def _remaining(ctx: StepContext, item: ReplicationItem, fraction: float | None, elapsed: float) -> float:
    """Seconds the job still needs: from its progress if it reports any, else from the forecast, else its age."""
    if fraction is not None and fraction < COARSE_FRACTION:
        high = fraction + 2 * PERCENT_STEP
        return elapsed * (1 - high) / high
    if fraction is not None:
        low = max(fraction - PERCENT_STEP, fraction / 2)
        return elapsed * (1 - low) / low
    expected = forecast.predict(ctx, pool_name_of(item), item.source_size)
    return expected - elapsed if expected is not None and expected > elapsed else elapsed


def _follow_image(
    ctx: StepContext, client: ImsClient, item: ReplicationItem, image_id: str, seq: int, *, after_job: bool
) -> list[Next]:
    image = client.get_image(image_id) if image_id else None
    if image is not None and image.status == "active":
        return copied(ctx, item, image.id)
    if image is None or image.status in GONE:
        status = "is gone" if image is None else f"is {image.status}"
        return finish(
            ctx,
            item,
            ItemState.FAILED,
            reason=ReasonCode.COPY_NOT_ACTIVE,
            message=f"the new image {image_id or '(unknown)'} {status}; it never became active",
        )
    # Not active yet. After the job's SUCCESS that is a matter of moments; an adopted copy with no job to ask
    # is still copying, so look again at a quarter of its age so far.
    elapsed = ctx.clock() - (item.job_started_at or ctx.clock())
    return _again(ctx, item, seq, 0.0 if after_job else elapsed / 4)


def _again(ctx: StepContext, item: ReplicationItem, seq: int, wait: float) -> list[Next]:
    if (late := _past_deadline(ctx, item)) is not None:
        return late
    if not _claim(ctx, item, seq):
        return []
    countdown = _countdown(ctx, wait)
    age = ctx.clock() - (item.job_started_at or ctx.clock())
    return [replace(Next.for_item(TaskName.POLL, item, countdown, seq=seq + 1), span=age + countdown)]


def _past_deadline(ctx: StepContext, item: ReplicationItem) -> list[Next] | None:
    """Fail the item if its copy has run past ``poll_deadline_seconds`` of the cloud's time: the seconds its
    account spent in an outage since the copy started do not count."""
    limit = ctx.settings.poll_deadline_seconds
    now = ctx.clock()
    elapsed = now - (item.submit_started_at or item.job_started_at or now)
    if elapsed <= limit:
        return None
    elapsed -= ctx.data.accounts.health(item.account, now).outage_seconds - (item.outage_mark or 0.0)
    if elapsed <= limit:
        return None
    message = f"the copy did not finish within {limit:.0f}s of its submission (outages left out)"
    return finish(ctx, item, ItemState.FAILED, reason=ReasonCode.POLL_DEADLINE, message=message)


def _countdown(ctx: StepContext, wait: float, margin: float = END_MARGIN) -> float:
    s = ctx.settings
    return min(s.poll_max_interval, max(s.poll_min_interval, wait * (1 + margin)))


def _claim(ctx: StepContext, item: ReplicationItem, seq: int) -> bool:
    return ctx.data.records.claim_poll(item.id, seq, ctx.clock())


def _fraction(percent: float | None) -> float | None:
    """``process_percent`` as a fraction in (0, 1); IMS documents 0.24 for 24 %, but accept 24 as well."""
    if percent is None or percent <= 0:
        return None
    value = percent / 100 if percent > 1 else percent
    return min(value, 0.999)
