"""The audit trail's keeper: writes each record to Redis and as a JSON log line, and reads it back for admins.

A record is written once the call's outcome is known, before its answer is sent. If Redis refuses the write, the
call's answer stands (the audit does not turn a done change into a failure): the record is still in the log, and
``imsrep_audit_unstored_total`` counts it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import redis
from prometheus_client import CollectorRegistry, Counter

from api import access
from api.errors import FieldError, InvalidRequest
from api.principals import Principal
from config.logging import AUDIT_LOGGER
from config.settings import Role, Settings
from worker.data import AuditPage, AuditRecord, AuditTrail

log = logging.getLogger(__name__)
trail_log = logging.getLogger(AUDIT_LOGGER)

DAY = 86_400


@dataclass(frozen=True)
class AuditQuery:
    """``GET /v1/audit``'s filters; each one given must match."""

    limit: int = 50
    cursor: str | None = None
    principal: str | None = None
    action: str | None = None
    batch: str | None = None  # a batch's, a plan's or a policy's ID
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: AuditRecord) -> bool:
        return (
            (self.principal is None or record.principal == self.principal)
            and (self.action is None or record.action == self.action)
            and (self.batch is None or self.batch in (record.batch_id, record.plan_id, record.policy_id))
            and (self.outcome is None or record.outcome == self.outcome)
        )


class Auditor:
    def __init__(self, trail: AuditTrail, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.trail = trail
        self.keep_seconds = settings.audit_retention_days * DAY
        self.unstored = Counter(
            "imsrep_audit_unstored",
            "Audit records Redis refused to store (each is still in the imsrep.audit log)",
            registry=registry,
        )

    def record(self, record: AuditRecord, now: float) -> None:
        fields = asdict(record)
        del fields["id"]
        by = f" by {record.principal}" if record.principal else ""
        trail_log.info("%s %s (%d)%s", record.action, record.outcome, record.status, by, extra={"audit": fields})
        try:
            self.trail.append(record, keep_seconds=self.keep_seconds, now=now)
        except redis.RedisError as exc:
            self.unstored.inc()
            log.warning("audit record of request %s not stored in Redis (it is in the log): %s", record.request_id, exc)

    def read(self, who: Principal, query: AuditQuery) -> AuditPage:
        access.need(who, Role.ADMIN, "reading the audit trail")
        since, until = _seconds(query.since), _seconds(query.until)
        if since is not None and until is not None and until < since:
            rule = "must not be before since"
            raise InvalidRequest([FieldError(None, "until", rule)], f"until: {rule}")
        return self.trail.page(limit=query.limit, cursor=query.cursor, since=since, until=until, match=query.matches)


def _seconds(moment: datetime | None) -> float | None:
    """A time given without a zone is UTC (not the API host's local time)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
