"""Each principal's limits (docs/teams.md, "Limits"): requests a second on every ``/v1`` route, and items not yet
finished at submission. Over either: 429 with ``Retry-After``, naming the limit. Both are kept in Redis, so every
API replica holds a principal to the same ones."""

from __future__ import annotations

import redis

from api.errors import TooManyRequests
from api.principals import Principal
from worker.data import PrincipalLimits, unavailable
from worker.pressure import REFUSALS

# Items finish in minutes, not seconds: a client refused for its unfinished items asks again after this long.
UNFINISHED_RETRY_AFTER = 30


def take_request(data: PrincipalLimits, who: Principal, path: str) -> None:
    """Take one of the principal's request tokens for a request to ``path``, or refuse it (429).

    While Redis cannot keep the bucket the request goes on: the route answers 503 itself if it needs Redis, and a
    read that Redis can still serve (it refuses writes at its memory limit) is not refused for want of a write."""
    limits = who.limits
    if limits is None:
        return
    try:
        wait = data.take_request(who.name, limits.requests_per_second, limits.request_burst)
    except redis.RedisError as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused(f"the request limit of principal {who.name} let {path} through", exc)
        return
    if wait > 0:
        raise TooManyRequests(
            f"principal {who.name} is over its request rate of {limits.requests_per_second:g} a second "
            f"(bursts of {limits.request_burst}); send again in {wait:.1f} s",
            wait,
        )


def room_for(data: PrincipalLimits, who: Principal, adding: int) -> None:
    """Refuse (429) a submission whose ``adding`` items would take the principal's unfinished items over its
    limit; nothing is stored then."""
    limits = who.limits
    if limits is None:
        return
    unfinished = data.unfinished(who.name)
    if unfinished + adding > limits.max_unfinished_items:
        raise TooManyRequests(
            f"principal {who.name} has {unfinished} unfinished items and a limit of {limits.max_unfinished_items}: "
            f"{adding} more would exceed it; send again once some have finished (or cancel some)",
            UNFINISHED_RETRY_AFTER,
        )
