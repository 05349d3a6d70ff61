"""Image checks made together: the copies of an account whose IMS job ended well and whose new image is still to
be seen ``active`` wait here, and one check task looks at all of them with one listing (``worker.steps.new_images``).

At most one check task per account is scheduled at a time (``P:checks:<account>:sent``, which expires, so a check
task that was lost is sent again by the next copy that ends). Taking the line is atomic, so two check tasks never
look at the same copy, and a copy taken by a task that then died is found by the reconciler (its due time).
"""

from __future__ import annotations

import redis

from worker.data.keyspace import Keyspace


class ImageChecks:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys

    def add(self, account: str, item_id: str, now: float, *, within: float) -> bool:
        """Put the copy in the account's line; True when no check is scheduled (the caller sends one, due in
        ``within`` seconds: the claim lasts a little longer, then lapses in case that task is lost)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(self._keys.checks(account), {item_id: now})
        pipe.set(self._keys.checks_sent(account), "1", nx=True, px=max(1, int((within + 5.0) * 1000)))
        return bool(pipe.execute()[1])

    def take(self, account: str) -> list[str]:
        """Every copy waiting in the account's line, which is left empty; a copy that ends from now on schedules
        the next check."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.checks_sent(account))
        pipe.zrange(self._keys.checks(account), 0, -1)
        pipe.delete(self._keys.checks(account))
        return list(pipe.execute()[1])
