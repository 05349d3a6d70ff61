"""Standing policies over HTTP: every route, its validation (422 naming field and rule), its roles and scope (a
submitter changes its own, an operator any in its accounts, what is out of scope is a 404), and its audit records.
No worker here: a run now only makes the policy due and sends the tick."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from tests.api.conftest import admit_messages
from tests.support import ended_run
from worker.domain.states import ItemState

OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
ROLES = {
    "reader": ("reader", "default"),
    "submitter": ("submitter", "default"),
    "colleague": ("submitter", "default"),
    "operator": ("operator", "default"),
    "outsider": ("operator", "other"),
}
ADMIN = "admin"
BODY = {
    "name": "fast-create",
    "selector": {"fast_create": False},
    "template": {"name": "{name}-fc", "tags": {"team": "web"}},
    "schedule": {"every": 30},
}


def _token(name: str) -> str:
    return f"{name}-token-{'p' * 16}"


@pytest.fixture(scope="module")
def teams(start_api):
    env = {
        "IMSREP_ACCOUNTS__OTHER__PROJECT_ID": OTHER_PROJECT,
        "IMSREP_ACCOUNTS__OTHER__ACCESS_KEY": "AKOTHEREXAMPLE",
        "IMSREP_ACCOUNTS__OTHER__SECRET_KEY": "SKOTHEREXAMPLE",
        "IMSREP_POLICY_MIN_INTERVAL": "30",
    }
    for name, (role, account) in ROLES.items():
        env |= {
            f"IMSREP_PRINCIPALS__{name.upper()}__TOKEN": _token(name),
            f"IMSREP_PRINCIPALS__{name.upper()}__ROLE": role,
            f"IMSREP_PRINCIPALS__{name.upper()}__ACCOUNTS": account,
        }
    return start_api(**env)


def _call(teams, who: str, method: str, path: str, **kwargs):
    with teams.client(teams.token if who == ADMIN else _token(who)) as c:
        return c.request(method, path, **kwargs)


def _create(teams, who: str = "submitter", **fields) -> dict:
    answer = _call(teams, who, "POST", "/v1/policies", json={**BODY, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_policy_is_created_shown_listed_and_due_at_once(teams) -> None:
    before = time.time()
    policy = _create(teams)
    assert policy["name"] == "fast-create" and policy["account"] == "default" and policy["submitted_by"] == "submitter"
    assert policy["schedule"] == {"every": 30, "cron": None} and policy["overlap"] == "skip" and not policy["paused"]
    assert policy["runs"] == 0 and policy["last_batch_id"] is None
    due = teams.redis().zscore(f"{teams.prefix}:policies:due", policy["policy_id"])
    assert before <= due <= time.time()  # an interval's first run is due now
    shown = _call(teams, "reader", "GET", f"/v1/policies/{policy['policy_id']}").json()
    assert shown == policy
    listed = _call(teams, "reader", "GET", "/v1/policies").json()["policies"]
    assert policy["policy_id"] in [p["policy_id"] for p in listed]


def test_a_cron_policy_is_due_at_its_next_time(teams) -> None:
    policy = _create(teams, schedule={"cron": "0 3 * * *"}, overlap="wait")
    due = teams.redis().zscore(f"{teams.prefix}:policies:due", policy["policy_id"])
    assert time.gmtime(due)[3:6] == (3, 0, 0) and 0 < due - time.time() <= 86_400
    assert policy["overlap"] == "wait"


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"schedule": {"every": 10}}, "schedule.every", "must be at least 30 seconds (IMSREP_POLICY_MIN_INTERVAL)"),
        ({"schedule": {"cron": "61 * * * *"}}, "schedule.cron", "is not a cron expression Celery accepts"),
        ({"schedule": {"cron": "* * *"}}, "schedule.cron", "must have 5 fields"),
        ({"schedule": {"every": 60, "cron": "* * * * *"}}, "schedule", "give exactly one of every (seconds) and cron"),
        ({"name": "has space"}, "name", "must be 1-64 letters"),
        ({"overlap": "queue"}, "overlap", "Input should be 'skip' or 'wait'"),
        ({"selector": {"colour": "red"}}, "selector.colour", "is not a known field"),
        ({"selector": {"account": "nobody"}}, "selector.account", "must be one of the configured accounts"),
        ({"template": {"name": "{nope}"}}, "template.name", "unknown placeholder {nope}"),
        ({"template": {"tags": {"imsrep_policy": "x"}}}, "template.tags", "imsrep_policy is set by the policy"),
        ({"template": {"tags": {f"k{i}": "v" for i in range(6)}}}, "template.tags", "at most 5 tags"),
        ({"template": {"kms_key": "ims/default", "decrypt": True}}, "template", "decrypt makes unencrypted copies"),
        ({"template": {"distribute": [{"account": "nobody"}]}}, "template.distribute.0.account", "must be one of"),
        ({"template": {"distribute": [{"account": "default"}]}}, "template.distribute.0.account", "is the source"),
        ({"template": {"withdraw_share": True}}, "template.withdraw_share", "is only for a distribution"),
        (
            {"template": {"kms_key": "ims/default", "distribute": [{"account": "other"}]}},
            "template.kms_key",
            "a distribution shares the copy, which must be unencrypted",
        ),
        ({"surprise": 1}, "surprise", "is not a known field"),
        ({"retention": {}}, "retention", "give keep_last, keep_for or both"),
        ({"retention": {"keep_last": 0}}, "retention.keep_last", "Input should be greater than or equal to 1"),
        ({"retention": {"keep_for": 5}}, "retention.keep_for", "Input should be greater than or equal to 60"),
        ({"retention": {"keep_last": 2, "action": "purge"}}, "retention.action", "Input should be 'report' or"),
        ({"retention": {"keep_last": 2, "lineage_tag": "k" * 37}}, "retention.lineage_tag", "String should have at"),
        ({"retention": {"keep_last": 2, "keep": 1}}, "retention.keep", "is not a known field"),
    ],
)
def test_a_bad_definition_is_a_422_naming_the_field_and_rule(teams, fields, field, rule) -> None:
    before = teams.redis().zcard(f"{teams.prefix}:policies")
    answer = _call(teams, "submitter", "POST", "/v1/policies", json={**BODY, **fields})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert any(e["field"] == field and e["rule"].startswith(rule) for e in errors), errors
    assert teams.redis().zcard(f"{teams.prefix}:policies") == before


def test_a_retention_rule_is_stored_shown_changed_and_removed(teams) -> None:
    rule = {"keep_last": 3, "action": "delete", "lineage_tag": "family"}
    policy = _create(teams, retention=rule)
    assert policy["retention"] == {**rule, "keep_for": None, "delete_shared": False}
    path = f"/v1/policies/{policy['policy_id']}"
    changed = _call(teams, "submitter", "PATCH", path, json={"retention": {"keep_for": 86_400}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["retention"]["keep_for"] == 86_400 and changed.json()["retention"]["action"] == "report"
    removed = _call(teams, "submitter", "PATCH", path, json={"retention": None})
    assert removed.status_code == 200 and removed.json()["retention"] is None


def test_bodies_that_are_not_definitions_are_422s(teams) -> None:
    for body in ([], "x", {"name": "n"}):
        assert _call(teams, "submitter", "POST", "/v1/policies", json=body).status_code == 422
    assert _call(teams, "submitter", "POST", "/v1/policies", content=b"{").status_code == 422


def test_update_checks_the_whole_definition_and_a_new_schedule_runs_from_now(teams) -> None:
    policy = _create(teams, schedule={"cron": "0 3 * * *"})
    path = f"/v1/policies/{policy['policy_id']}"
    bad = _call(teams, "submitter", "PATCH", path, json={"template": {"name": "{nope}"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "template.name"
    changed = _call(teams, "submitter", "PATCH", path, json={"name": "renamed", "schedule": {"every": 45}})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "renamed" and body["schedule"]["every"] == 45
    assert body["selector"] == {**BODY["selector"], **_PRIVATE}
    due = teams.redis().zscore(f"{teams.prefix}:policies:due", policy["policy_id"])
    assert 40 <= due - time.time() <= 45


def test_pause_resume_and_run_now(teams) -> None:
    policy = _create(teams, schedule={"cron": "0 3 * * *"})
    path, due_key = f"/v1/policies/{policy['policy_id']}", f"{teams.prefix}:policies:due"
    paused = _call(teams, "submitter", "POST", f"{path}/pause").json()
    assert paused["paused"] is True and paused["next_run_at"] is None
    assert teams.redis().zscore(due_key, policy["policy_id"]) is None
    assert _call(teams, "submitter", "POST", f"{path}/run").status_code == 409  # paused: resume it first
    resumed = _call(teams, "submitter", "POST", f"{path}/resume").json()
    assert resumed["paused"] is False and resumed["next_run_at"] is not None
    run = _call(teams, "submitter", "POST", f"{path}/run")
    assert run.status_code == 202 and run.json() == {"policy_id": policy["policy_id"], "run": 1}
    assert run.headers["Location"] == f"{path}/runs"
    assert teams.redis().zscore(due_key, policy["policy_id"]) <= time.time()
    ticks = [m for m in _maintenance(teams) if m["task"] == "replication.start_runs"]
    assert ticks, "run now asks a worker to start the due runs"


def _maintenance(teams) -> list[dict]:
    found = []
    for raw in teams.redis().lrange("maintenance", 0, -1):
        envelope = json.loads(raw)
        found.append({"task": envelope["headers"]["task"], "body": base64.b64decode(envelope["body"])})
    return found


def test_plan_makes_a_selector_plan_of_the_policy(teams) -> None:
    policy = _create(teams)
    answer = _call(teams, "submitter", "POST", f"/v1/policies/{policy['policy_id']}/plan")
    assert answer.status_code == 202, answer.text
    plan_id = answer.json()["plan_id"]
    assert answer.headers["Location"] == f"/v1/plans/{plan_id}"
    stored = teams.redis().hgetall(f"{teams.prefix}:plan:{plan_id}")
    selection = json.loads(stored["selection"])
    assert selection["policy"] == policy["policy_id"] and selection["selector"] == {"fast_create": False, **_PRIVATE}
    assert stored["label"] == "fast-create" and stored["principal"] == "submitter"
    [message] = [m for m in admit_messages(teams.redis()) if m["kwargs"].get("plan_id") == plan_id]
    assert message["kwargs"]["stage"] == "page"
    plan = _call(teams, "submitter", "GET", f"/v1/plans/{plan_id}").json()
    assert plan["state"] == "planning"


_PRIVATE = {"image_type": "private"}


def test_runs_lists_each_run_with_its_batch(teams) -> None:
    policy = _create(teams)
    data = teams.data()
    stored = data.policies.load(policy["policy_id"])
    assert stored is not None
    data.policies.claim(stored, time.time(), time.time() + 30, skipped="the previous run's batch x had not finished")
    answer = _call(teams, "reader", "GET", f"/v1/policies/{policy['policy_id']}/runs")
    assert answer.status_code == 200
    [run] = answer.json()["runs"]
    assert run["run"] == 1 and run["state"] == "skipped" and run["batch_id"] is None
    assert run["message"].startswith("the previous run's batch")


def test_a_policy_shows_its_latest_run_outcome_lag_and_copies(teams) -> None:
    policy = _create(teams)
    path = f"/v1/policies/{policy['policy_id']}"
    data = teams.data()
    assert data.policies.load(policy["policy_id"]).max_unfinished == 100_000  # the submitter's limit, for its runs
    batch_id = ended_run(data, policy["policy_id"], [ItemState.SUCCEEDED, ItemState.FAILED], oldest_age=42)
    shown = _call(teams, "reader", "GET", path).json()
    assert (shown["last_run_outcome"], shown["copies_made"], shown["copies_retired"]) == ("failed", 1, 0)
    assert shown["lag_seconds"] == pytest.approx(42)
    last = shown["last_run"]
    assert (last["run"], last["state"], last["batch_id"], last["lag_seconds"]) == (
        1,
        "finished",
        batch_id,
        shown["lag_seconds"],
    )
    [listed] = [
        p
        for p in _call(teams, "reader", "GET", "/v1/policies").json()["policies"]
        if p["policy_id"] == policy["policy_id"]
    ]
    assert listed == shown

    # The next run skipped (over the limit, say): the outcome says so; the lag and copies are the last batch's.
    data.policies.due_now(policy["policy_id"], time.time())
    assert data.policies.claim(data.policies.load(policy["policy_id"]), time.time(), time.time() + 30, skipped="over")
    shown = _call(teams, "reader", "GET", path).json()
    assert (shown["last_run_outcome"], shown["last_run"]["message"], shown["copies_made"]) == ("skipped", "over", 1)
    assert shown["lag_seconds"] == pytest.approx(42)


def test_a_runs_retention_verdicts_are_counted_and_listed_once_per_copy(teams) -> None:
    policy = _create(teams, retention={"keep_last": 1, "action": "delete"})
    data = teams.data()
    stored = data.policies.load(policy["policy_id"])
    assert stored is not None
    data.policies.claim(stored, time.time(), time.time() + 30, skipped="the previous run's batch x had not finished")
    gone = {"image_id": "c1", "source": "s1", "lineage": "web", "verdict": "retired", "reason": None, "message": None}
    kept = {**gone, "image_id": "c2", "source": "s2", "verdict": "kept_shared", "message": "accepted"}
    data.policies.record_retirements(stored.id, 1, [{**gone, "verdict": "failed", "reason": "IMS_REFUSED"}, kept])
    data.policies.record_retirements(stored.id, 1, [gone])  # the step again: c1 deleted this time
    [run] = _call(teams, "reader", "GET", f"/v1/policies/{stored.id}/runs").json()["runs"]
    assert run["retired"] == 1 and run["copies_made"] == 0
    assert sorted(run["retirements"], key=lambda j: j["image_id"]) == [gone, kept]
    data.policies.record_retirements(stored.id, 1, [gone])  # and again: counted once in the policy's total
    shown = _call(teams, "reader", "GET", f"/v1/policies/{stored.id}").json()
    assert (shown["copies_retired"], shown["last_run"]["retired"]) == (1, 1)


def test_delete_removes_the_policy_and_its_runs(teams) -> None:
    policy = _create(teams)
    path = f"/v1/policies/{policy['policy_id']}"
    verdict = {"image_id": "c1", "source": "s1", "lineage": "web", "verdict": "retirable"}
    teams.data().policies.record_retirements(policy["policy_id"], 1, [verdict])
    assert _call(teams, "submitter", "DELETE", path).status_code == 204
    assert _call(teams, "submitter", "GET", path).status_code == 404
    assert _call(teams, "submitter", "DELETE", path).status_code == 404
    assert teams.redis().exists(f"{teams.prefix}:policy:{policy['policy_id']}") == 0
    assert teams.redis().exists(f"{teams.prefix}:policy:{policy['policy_id']}:retired") == 0


# Roles and scope ---------------------------------------------------------------------------------------------------
CHANGES = [
    ("PATCH", "", {"json": {"name": "changed"}}),
    ("POST", "/pause", {}),
    ("POST", "/resume", {}),
    ("POST", "/run", {}),
    ("POST", "/plan", {}),
    ("DELETE", "", {}),
]
READS = [("GET", ""), ("GET", "/runs")]


@pytest.mark.parametrize(("method", "suffix", "kwargs"), CHANGES)
@pytest.mark.parametrize(
    ("who", "status"), [("submitter", None), ("operator", None), (ADMIN, None), ("colleague", 403), ("reader", 403)]
)
def test_who_may_change_a_policy(teams, method, suffix, kwargs, who, status) -> None:
    policy = _create(teams)  # the submitter's
    answer = _call(teams, who, method, f"/v1/policies/{policy['policy_id']}{suffix}", **kwargs)
    if status is None:
        assert answer.status_code < 300, answer.text
    else:
        assert answer.status_code == status, answer.text


@pytest.mark.parametrize(("method", "suffix", "kwargs"), [*CHANGES, *((m, s, {}) for m, s in READS)])
def test_a_policy_out_of_scope_is_not_found(teams, method, suffix, kwargs) -> None:
    policy = _create(teams)
    answer = _call(teams, "outsider", method, f"/v1/policies/{policy['policy_id']}{suffix}", **kwargs)
    assert answer.status_code == 404
    assert policy["policy_id"] not in [p["policy_id"] for p in _list(teams, "outsider")]
    assert policy["policy_id"] in [p["policy_id"] for p in _list(teams, ADMIN)]


def _list(teams, who: str) -> list[dict]:
    return _call(teams, who, "GET", "/v1/policies").json()["policies"]


def test_a_reader_cannot_create_and_nobody_creates_outside_their_accounts(teams) -> None:
    assert _call(teams, "reader", "POST", "/v1/policies", json=BODY).status_code == 403
    other = {**BODY, "selector": {"account": "other"}}
    refused = _call(teams, "submitter", "POST", "/v1/policies", json=other)
    assert refused.status_code == 403 and "account other" in refused.json()["detail"]
    assert _create(teams, "outsider", selector={"account": "other"})["account"] == "other"
    assert _call(teams, "reader", "GET", f"/v1/policies/{uuid.uuid4().hex}").status_code == 404


def test_a_policy_distributing_acts_in_its_receivers_accounts(teams) -> None:
    template = {**BODY["template"], "distribute": [{"account": "other", "key": "ims/other"}]}
    refused = _call(teams, "submitter", "POST", "/v1/policies", json={**BODY, "template": template})
    assert refused.status_code == 403 and "account other: not among principal submitter's" in refused.text
    mine = _create(teams)
    path = f"/v1/policies/{mine['policy_id']}"
    refused = _call(teams, "submitter", "PATCH", path, json={"template": template})
    assert refused.status_code == 403 and "account other" in refused.text
    policy = _create(teams, ADMIN, template=template)
    assert policy["template"]["distribute"] == [{"account": "other", "key": "ims/other"}]
    # Seen only by principals of every account it acts in, as a batch distributing is (docs/teams.md).
    assert _call(teams, "submitter", "GET", f"/v1/policies/{policy['policy_id']}").status_code == 404
    assert _call(teams, "outsider", "GET", f"/v1/policies/{policy['policy_id']}").status_code == 404
    query = {"batch": policy["policy_id"], "action": "policy.create"}
    with teams.client() as admin:
        [record] = admin.get("/v1/audit", params=query).json()["records"]
    assert record["accounts"] == ["default", "other"] and record["share_targets"] == [OTHER_PROJECT]


def test_every_change_is_audited_with_its_policy(teams) -> None:
    policy = _create(teams)
    path = f"/v1/policies/{policy['policy_id']}"
    _call(teams, "submitter", "POST", f"{path}/pause")
    _call(teams, "colleague", "DELETE", path)  # refused: not its own
    _call(teams, "outsider", "GET", path)  # out of scope
    with teams.client() as admin:
        records = admin.get("/v1/audit", params={"batch": policy["policy_id"]}).json()["records"]
    seen = [(r["action"], r["outcome"], r["principal"]) for r in records]
    assert seen == [
        ("policy.read", "not_found", "outsider"),
        ("policy.delete", "forbidden", "colleague"),
        ("policy.pause", "ok", "submitter"),
        ("policy.create", "ok", "submitter"),
    ]
    assert all(r["policy_id"] == policy["policy_id"] and r["accounts"] == ["default"] for r in records[1:])
