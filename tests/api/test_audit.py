"""What the audit trail records of a call, without HTTP: every /v1 route's action, outcomes by status, the facts the
service and the access checks note, and a record Redis refuses (logged and counted; the call's answer stands)."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis
from prometheus_client import CollectorRegistry

from api import audit
from api.app import create_app
from api.auditor import Auditor
from api.enqueue import Enqueuer
from api.errors import Forbidden, NotFound
from api.principals import Principal
from api.service import ReplicationService
from config.logging import AUDIT_LOGGER
from config.settings import Role
from worker.data import AuditRecord, open_data_layer

from .conftest import api_settings

ROOT = Principal("root", Role.ADMIN, None)
SHARE = "fedcba9876543210fedcba9876543210"  # in the test account's share_projects (tests/api/conftest.py)


def test_every_v1_route_has_an_action_and_every_action_a_route(settings) -> None:
    # The OpenAPI document lists every route; its operationId is the route's name, then its path and method.
    paths = create_app(settings).openapi()["paths"]
    routes = {
        op["operationId"]: method for path, ops in paths.items() if path.startswith("/v1") for method, op in ops.items()
    }
    names = {*audit.CHANGES, *audit.READS}
    found = {operation_id: [n for n in names if operation_id.startswith(f"{n}_v1_")] for operation_id in routes}
    assert all(len(named) == 1 for named in found.values()), found
    assert {named[0] for named in found.values()} == names
    changing = {
        named[0] for operation_id, named in found.items() if routes[operation_id] in ("post", "patch", "delete")
    }
    assert changing == set(audit.CHANGES)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "ok"), (202, "ok"), (204, "ok"), (403, "forbidden"), (404, "not_found"), (409, "conflict")]
    + [(422, "invalid"), (413, "too_large"), (429, "limited"), (503, "unavailable"), (500, "error"), (405, "invalid")],
)
def test_outcomes_by_status(status: int, outcome: str) -> None:
    assert audit.outcome(status) == outcome and outcome in audit.OUTCOMES


def test_a_submission_notes_its_accounts_items_share_targets_and_unencrypted_copies(service) -> None:
    items = [
        {"image_id": str(uuid.uuid4()), "kms_key": "ims/default"},
        {"image_id": str(uuid.uuid4()), "share_with": [SHARE]},
        {"image_id": str(uuid.uuid4())},
    ]
    with audit.gathering() as facts:
        stored = service.submit_batch(ROOT, {"items": items})
    assert (facts.batch_id, facts.plan_id, facts.accounts, facts.items) == (stored.batch_id, None, {"default"}, 3)
    assert (facts.share_targets, facts.unencrypted_copies, facts.selector) == ({SHARE}, 2, None)

    with audit.gathering() as facts:
        plan = service.submit_batch(ROOT, {"plan": True, "selector": {}, "template": {"share_with": [SHARE]}})
    assert (facts.plan_id, facts.batch_id, facts.items) == (plan.plan_id, None, 0)
    assert (facts.selector, facts.share_targets) == ("unencrypted", {SHARE})

    with audit.gathering() as facts:
        service.cancel(ROOT, stored.batch_id)
    assert (facts.accounts, facts.items) == ({"default"}, 3)


def test_a_distribution_notes_its_receivers_accounts_and_projects(api_redis_url) -> None:
    default = api_settings(api_redis_url, "unused").accounts["default"]
    team = default.model_copy(update={"project_id": SHARE})
    settings = api_settings(api_redis_url, f"svc{uuid.uuid4().hex[:8]}", accounts={"default": default, "team": team})
    data = open_data_layer(settings.redis_url, settings.key_prefix)
    enqueuer = Enqueuer(settings)
    try:
        with audit.gathering() as facts:
            ReplicationService(data, enqueuer, settings).submit_batch(
                ROOT, {"items": [{"image_id": str(uuid.uuid4()), "distribute": [{"account": "team"}]}]}
            )
    finally:
        enqueuer.close()
        data.close()
    assert (facts.accounts, facts.share_targets) == ({"default", "team"}, {SHARE})


def test_refusals_note_why_and_a_hidden_batch_says_it_is_out_of_scope(service) -> None:
    stored = service.submit_batch(ROOT, {"items": [{"image_id": str(uuid.uuid4())}]})
    reader = Principal("ray", Role.READER, frozenset({"default"}))
    with audit.gathering() as facts, pytest.raises(Forbidden):
        service.cancel(reader, stored.batch_id)
    assert "needs the submitter role" in (facts.detail or "") and not facts.out_of_scope
    assert audit.recorded(False, 403, facts)

    stranger = Principal("stan", Role.OPERATOR, frozenset({"elsewhere"}))
    with audit.gathering() as facts, pytest.raises(NotFound):
        service.batch(stranger, stored.batch_id)
    assert facts.out_of_scope and audit.recorded(False, 404, facts)
    with audit.gathering() as facts, pytest.raises(NotFound):
        service.batch(ROOT, uuid.uuid4().hex)
    assert not audit.recorded(False, 404, facts)  # missing, not hidden: a read that is no refusal
    assert audit.facts().items is None  # outside a call, a note goes nowhere


class _Refusing:
    def append(self, record: AuditRecord, *, keep_seconds: float, now: float) -> str:
        raise redis.ConnectionError("Redis is down")


def test_a_record_redis_refuses_is_still_logged_and_is_counted(settings, caplog) -> None:
    registry = CollectorRegistry()
    auditor = Auditor(_Refusing(), settings, registry)  # type: ignore[arg-type]
    call = audit.Call("alice", "10.0.0.1", "req-1", "POST", "/v1/batches", "batch.submit", 202)
    trail_log = logging.getLogger(AUDIT_LOGGER)
    trail_log.addHandler(caplog.handler)  # whether or not logging was configured (its own handler, not the root's)
    try:
        with caplog.at_level(logging.INFO):
            auditor.record(audit.record_of(call, audit.Facts(batch_id="b" * 32), 1_767_225_600.0), 1_767_225_600.0)
    finally:
        trail_log.removeHandler(caplog.handler)
    [line, *_] = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert line.getMessage() == "batch.submit ok (202) by alice"
    logged = line.audit  # what the imsrep.audit handler writes as one JSON object (config/logging.py)
    assert logged["request_id"] == "req-1" and logged["batch_id"] == "b" * 32 and logged["outcome"] == "ok"
    assert logged["time"] == "2026-01-01T00:00:00.000+00:00"
    assert registry.get_sample_value("imsrep_audit_unstored_total") == 1
    assert "not stored in Redis" in caplog.text
