"""Why a waiting item has no slot yet, and what a user can do about it: the one table the API, the command line, the
metrics and Flower take their words from. Which reason holds a pool's line is decided in ``worker.data.PoolStatus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum


class BlockedBy(str, Enum):
    SLOTS = "slots"  # every slot is busy with our own copies: the line moves as they end
    OUTAGE = "outage"  # the account's circuit is open
    QUOTA = "quota"  # the project's image quota has no room
    IMS_FULL = "ims_full"  # IMS counts copies made elsewhere against the slots


@dataclass(frozen=True)
class Wait:
    next_step: str  # in a few words, for a status line: ``waiting 5 (quota: <next_step>)``
    hint: str  # what holds the line and the next step, in full; ``{project}`` and ``{next_probe}`` are filled in
    forecast: bool  # copies ending move the line, so a time to drain it can be forecast


WAITS: dict[BlockedBy, Wait] = {
    BlockedBy.SLOTS: Wait(
        "each starts as a copy ends",
        "every slot is busy with imsrep's own copies; the next item starts as soon as one ends (nothing to do)",
        forecast=True,
    ),
    BlockedBy.QUOTA: Wait(
        "delete images or raise the image quota",
        "the project's private-image quota is full: delete images it no longer needs or raise its IMS image quota "
        '(the simulator: --image-quota N at start, or POST /_sim/projects/{project} {{"image_quota": N}} while it '
        "runs; docs/simulator.md). imsrep reads the quota again every minute (IMSREP_QUOTA_REFRESH_SECONDS) and goes "
        "on by itself; items still waiting after a day (IMSREP_QUOTA_WAIT_SECONDS) fail with QUOTA_EXCEEDED",
        forecast=False,
    ),
    BlockedBy.OUTAGE: Wait(
        "wait for the outage to end",
        "IMS keeps failing this account's requests (5xx, timeouts, refused connections), so only a probe goes out; "
        "the copies resume by themselves as soon as one is answered{next_probe}. Nothing to do but wait",
        forecast=False,
    ),
    BlockedBy.IMS_FULL: Wait(
        "frees as copies made elsewhere end",
        "IMS says its limit of concurrent copies is full though imsrep runs fewer: copies started elsewhere (the "
        "console, other tools) hold the rest. imsrep uses the slots left and tries one more each probe interval; "
        "they free up as those copies end, sooner if you stop them",
        forecast=False,
    ),
}


def hint(blocked_by: BlockedBy, *, project: str | None = None, next_probe_at: float | None = None) -> str:
    """The full hint, with the project whose quota it is and when the next probe goes, where they apply."""
    probe = "" if next_probe_at is None else f" (next probe {_clock(next_probe_at)})"
    return WAITS[blocked_by].hint.format(project=project or "<project_id>", next_probe=probe)


def stalls(blocked_by: str | None) -> bool:
    """Whether a line held for this reason no longer moves as copies end (no time to drain it can be forecast).
    A reason this version does not know (a newer API's) is taken to stall: better no ETA than a wrong one."""
    if blocked_by is None:
        return False
    try:
        return not WAITS[BlockedBy(blocked_by)].forecast
    except ValueError:
        return True


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S UTC")
