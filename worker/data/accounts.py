"""What the cluster knows about each account beyond its items: a hold on refused credentials, how long its copies
take, and its request-rate bucket."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.data.keyspace import Keyspace
from worker.data.scripts import register


@dataclass(frozen=True)
class QuotaReading:
    quota: int
    used: int
    at: float  # when it was read

    @property
    def headroom(self) -> int:
        return max(0, self.quota - self.used)


DURATION_SAMPLES = 20  # latest successful copies an account's duration forecast is fitted on


class AccountState:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys
        self._take_token = register(client, "take_token")

    def hold(self, account: str, reason: str, seconds: float) -> None:
        """Stop using the account for ``seconds``: its credentials were refused (``reason`` says how)."""
        self._redis.set(self._keys.hold(account), reason, ex=max(1, round(seconds)))

    def held(self, account: str) -> str | None:
        """Why the account is on hold, or None."""
        return self._redis.get(self._keys.hold(account))

    def record_duration(self, account: str, size: int, seconds: float) -> None:
        key = self._keys.durations(account)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(key, f"{size} {seconds:.3f}")
        pipe.ltrim(key, 0, DURATION_SAMPLES - 1)
        pipe.execute()

    def durations(self, account: str) -> list[tuple[float, float]]:
        """(bytes, seconds) of the account's latest successful copies, newest first."""
        samples = []
        for entry in self._redis.lrange(self._keys.durations(account), 0, -1):
            size, seconds = entry.split()
            samples.append((float(size), float(seconds)))
        return samples

    def record_quota(self, account: str, quota: int, used: int, at: float) -> None:
        """The account's private-image quota as IMS just gave it (``GET /v1/cloudimages/quota``)."""
        self._redis.hset(self._keys.quota_reading(account), mapping={"quota": quota, "used": used, "at": at})

    def quota_reading(self, account: str) -> QuotaReading | None:
        """The last quota reading of the account, if any was made."""
        data = self._redis.hgetall(self._keys.quota_reading(account))
        if not data:
            return None
        return QuotaReading(int(data["quota"]), int(data["used"]), float(data["at"]))

    def take_token(self, account: str, rate: float, burst: int, max_wait: float) -> float:
        """One request token. >= 0: granted after sleeping that many seconds; < 0: refused, retry after -value."""
        return float(self._take_token(keys=[self._keys.ratelimit(account)], args=[rate, burst, max_wait]))
