"""What the audit trail records of an API call (docs/teams.md), without HTTP: the action (by route), the facts the
service and the access checks learn while they handle it, and the outcome (by status).

Facts are gathered in a context variable the request's middleware (api.auditing) opens: the service and the access
checks note what they learn as they go, a refusal included, without every signature carrying a recorder. Outside a
request (tests, scripts) a note goes nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone

from worker.data import AuditRecord, NewItem
from worker.domain.ownership import Owner
from worker.domain.selector import Template

# Every /v1 route's action, by the route's name (its function's). The changing ones are recorded whatever their
# outcome; the reads only when refused for scope or role. tests/api/test_audit.py checks that every route has one.
CHANGES: dict[str, str] = {
    "submit_batch": "batch.submit",  # a plan (``plan: true``) too: its record has a plan_id
    "submit_replication": "replication.submit",
    "cancel_batch": "batch.cancel",
    "retry_batch": "batch.retry",
    "delete_batch": "batch.delete",
    "check_accounts": "accounts.check",
    "create_policy": "policy.create",
    "update_policy": "policy.update",
    "pause_policy": "policy.pause",
    "resume_policy": "policy.resume",
    "delete_policy": "policy.delete",
    "run_policy": "policy.run",
    "plan_policy": "policy.plan",  # its record has the plan_id too
}
READS: dict[str, str] = {
    "list_batches": "batch.list",
    "get_batch": "batch.read",
    "list_items": "batch.items",
    "get_plan": "plan.read",
    "get_replication": "replication.read",
    "list_accounts": "accounts.list",
    "read_audit": "audit.read",
    "list_policies": "policy.list",
    "get_policy": "policy.read",
    "list_policy_runs": "policy.runs",
}
ACTIONS = sorted({*CHANGES.values(), *READS.values()})

_OUTCOMES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict"}
_OUTCOMES |= {413: "too_large", 422: "invalid", 429: "limited", 503: "unavailable"}
OUTCOMES = sorted({"ok", "error", *_OUTCOMES.values()})


def outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return _OUTCOMES.get(status, "error" if status >= 500 else "invalid")


@dataclass
class Facts:
    """What handling one call learned: what it acted on, and why it was refused if it was for scope or role."""

    batch_id: str | None = None
    plan_id: str | None = None
    policy_id: str | None = None
    accounts: set[str] = field(default_factory=set)
    items: int | None = None
    share_targets: set[str] = field(default_factory=set)
    unencrypted_copies: int | None = None
    selector: str | None = None
    detail: str | None = None
    out_of_scope: bool = False  # answered 404 as if missing, for it is not the principal's

    def asked(
        self,
        items: Sequence[NewItem],
        accounts: Iterable[str],
        template: Template | None = None,
        receivers: Iterable[str] = (),
    ) -> None:
        """A submission's items (defaults applied) and, for a selector, the template its images will be copied by;
        ``receivers``: the projects of its distributions' receivers, whom the copies are shared with too."""
        self.accounts.update(accounts)
        self.items = len(items)
        # As each item asks, defaults applied: an item without kms_key asks for an unencrypted copy.
        self.share_targets.update(target for new in items for target in new.spec.share_with or ())
        self.share_targets.update(receivers)
        self.unencrypted_copies = sum(new.spec.kms_key is None for new in items)
        if template is not None:
            self.share_targets.update(template.share_with or ())
            self.selector = "unencrypted" if template.kms_key is None else "encrypted"

    def acted_on(self, owner: Owner | None) -> None:
        """The accounts of the stored batch the call acts on."""
        if owner is not None:
            self.accounts.update(owner.accounts)

    def refused(self, detail: str, *, out_of_scope: bool = False) -> str:
        """Note why the call is refused for scope or role; returns ``detail`` for the refusal to raise."""
        self.detail = detail
        self.out_of_scope = out_of_scope
        return detail


_current: ContextVar[Facts | None] = ContextVar("audit_facts", default=None)


def facts() -> Facts:
    """The facts of the call being handled (a throwaway outside one)."""
    return _current.get() or Facts()


@contextmanager
def gathering() -> Iterator[Facts]:
    """Gather the facts of one call: what the code it runs notes through ``facts()``."""
    gathered = Facts()
    token = _current.set(gathered)
    try:
        yield gathered
    finally:
        _current.reset(token)


def action_of(route: str | None) -> tuple[str | None, bool]:
    """The action of a call to the route named ``route``, and whether it changes something."""
    if route in CHANGES:
        return CHANGES[route], True
    return READS.get(route or ""), False


def recorded(changes: bool, status: int, gathered: Facts) -> bool:
    """A change is recorded whatever its outcome; a read only when refused for scope or role."""
    return changes or status == 403 or gathered.out_of_scope


@dataclass(frozen=True)
class Call:
    """The call as HTTP saw it: who, from where, which request, what it answered."""

    principal: str | None
    source: str | None
    request_id: str
    method: str
    path: str
    action: str
    status: int


def record_of(call: Call, gathered: Facts, now: float) -> AuditRecord:
    return AuditRecord(
        time=datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="milliseconds"),
        request_id=call.request_id,
        principal=call.principal,
        source=call.source,
        method=call.method,
        path=call.path,
        action=call.action,
        outcome=outcome(call.status),
        status=call.status,
        batch_id=gathered.batch_id,
        plan_id=gathered.plan_id,
        policy_id=gathered.policy_id,
        accounts=sorted(gathered.accounts),
        items=gathered.items,
        share_targets=sorted(gathered.share_targets),
        unencrypted_copies=gathered.unencrypted_copies,
        selector=gathered.selector,
        detail=gathered.detail,
    )
