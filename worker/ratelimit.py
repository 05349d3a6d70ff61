"""The cluster-wide request-rate limiter: one token bucket per account in Redis, shared by every worker process.

Redis keys (``P`` is the key prefix)::

    P:ratelimit:<account>   hash  tokens, ts   (expires once the bucket would be full again)
    P:ims:outcomes          hash  "<endpoint>:<outcome>" -> count of IMS/KMS answers (for /metrics)

The bucket refills at ``request_rate`` tokens a second up to ``request_burst``. The script reads the clock with
Redis ``TIME``, so workers on hosts with skewed clocks share one timeline. A caller that would wait at most
``max_wait`` seconds has its token reserved (the bucket goes into debt) and sleeps that short while; a longer wait
is refused with ``RateLimited(retry_after=wait)``, which the pipeline turns into a rescheduled task (with jitter)
rather than a long sleep inside a worker slot.
"""

from __future__ import annotations

import time

import redis

from config.settings import AccountSettings
from worker.errors import ThrottledError
from worker.ims.hooks import ClientHooks

_TAKE = """
local key, rate, burst, max_wait = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
  if wait > max_wait then
    -- Refused: leave the bucket as it is (refilled up to now), tell the caller how long to stay away.
    redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
    return tostring(-wait)
  end
end
tokens = tokens - 1
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class RateLimited(ThrottledError):
    """Our own limiter refused a request before it was sent: nothing reached the cloud, nothing to count."""


class TokenBucket:
    def __init__(self, client: redis.Redis, prefix: str = "imsrep", *, max_wait: float = 1.0) -> None:
        self.redis = client
        self.prefix = prefix
        self.max_wait = max_wait
        self._take = client.register_script(_TAKE)

    def key(self, account: str) -> str:
        return f"{self.prefix}:ratelimit:{account}"

    def take(self, account: str, rate: float, burst: int) -> float:
        """Take one token. >= 0: granted after sleeping that many seconds; < 0: refused, retry after -value."""
        return float(self._take(keys=[self.key(account)], args=[rate, burst, self.max_wait]))


class RateLimitHooks(ClientHooks):
    """``ClientHooks`` for one account's ImsClient: every request takes a token; answers are counted."""

    def __init__(self, bucket: TokenBucket, account_name: str, account: AccountSettings) -> None:
        self.bucket = bucket
        self.account_name = account_name
        self.rate = account.request_rate
        self.burst = account.request_burst

    def before_request(self, endpoint: str) -> None:
        wait = self.bucket.take(self.account_name, self.rate, self.burst)
        if wait < 0:
            raise RateLimited(
                f"request rate limit of account {self.account_name} reached", endpoint=endpoint, retry_after=-wait
            )
        if wait > 0:
            time.sleep(wait)  # at most the bucket's max_wait (a second): cheaper than a reschedule

    def after_response(self, endpoint: str, outcome: str) -> None:
        self.bucket.redis.hincrby(f"{self.bucket.prefix}:ims:outcomes", f"{endpoint}:{outcome}", 1)
