"""The audit trail: who changed what through the API, and who was refused, kept apart from the batches.

One Redis stream (``P:audit``), one entry per record holding the record as JSON (the same object as its
``imsrep.audit`` log line). Entries are appended with Redis's own clock as their ID, so the stream is in time order
whichever API replica writes; each append drops the entries older than the retention time (``XADD ... MINID``).
Deleting a batch, or the batch retention sweep, never touches it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import redis

from worker.data.keyspace import Keyspace

_PAGE = 500  # entries read per round trip
SCAN_LIMIT = 10_000  # entries one page request looks at, at most: a filter that matches little still answers soon


@dataclass(frozen=True)
class AuditRecord:
    """One call, as recorded. ``id`` is the stream entry's, empty until stored."""

    time: str  # when the outcome was known: ISO 8601, UTC
    request_id: str
    principal: str | None
    source: str | None  # the client's address
    method: str
    path: str
    action: str
    outcome: str  # ok, invalid, forbidden, not_found, conflict, ... (api.audit.outcome)
    status: int
    batch_id: str | None = None
    plan_id: str | None = None
    policy_id: str | None = None
    accounts: list[str] = field(default_factory=list)
    items: int | None = None  # the items stored or changed; None when the call got no further
    share_targets: list[str] = field(default_factory=list)
    unencrypted_copies: int | None = None  # items asking for a copy without a KMS key
    selector: str | None = None  # a selector's copies: "encrypted" or "unencrypted"; None without a selector
    detail: str | None = None  # why a refusal for scope or role was made
    id: str = ""

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["id"]
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_entry(cls, entry_id: str, text: str) -> AuditRecord:
        return cls(**json.loads(text), id=entry_id)


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: str | None  # pass back for the next (older) page; None once there is none


class AuditTrail:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys

    def append(self, record: AuditRecord, *, keep_seconds: float, now: float) -> str:
        """Store ``record``; entries older than ``keep_seconds`` before ``now`` go. Returns its entry ID."""
        oldest = max(0, int((now - keep_seconds) * 1000))
        # Exact trimming (not "~"): the stream is small per write and the retention is what the setting says.
        return self._redis.xadd(self._keys.audit(), {"record": record.to_json()}, minid=oldest, approximate=False)

    def page(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        since: float | None = None,
        until: float | None = None,
        match: Callable[[AuditRecord], bool] | None = None,
        scan_limit: int = SCAN_LIMIT,
    ) -> AuditPage:
        """Records newest first, at most ``limit``, older than ``cursor`` (a previous page's ``next_cursor``),
        stored between ``since`` and ``until`` (inclusive, seconds), and those ``match`` keeps. At most
        ``scan_limit`` entries are looked at: a page may then be short, with a cursor to go on from."""
        newest = f"({cursor}" if cursor else ("+" if until is None else str(math.floor(until * 1000)))
        oldest = "-" if since is None else str(math.ceil(since * 1000))
        found: list[AuditRecord] = []
        scanned = 0
        while scanned < scan_limit:
            count = min(_PAGE, scan_limit - scanned)
            entries = self._redis.xrevrange(self._keys.audit(), newest, oldest, count=count)
            for entry_id, fields in entries:
                record = AuditRecord.from_entry(entry_id, fields["record"])
                if match is None or match(record):
                    if len(found) == limit:  # one more exists: there is a next page
                        return AuditPage(found, found[-1].id)
                    found.append(record)
            scanned += len(entries)
            if len(entries) < count:
                return AuditPage(found, None)
            newest = f"({entries[-1][0]}"
        return AuditPage(found, newest[1:])  # the scan stopped short of the end: go on from the last entry seen
