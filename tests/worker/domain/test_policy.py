"""A policy's schedule (an interval, or cron as Celery reads it), its definition and its stored form."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from worker.domain.followups import POLICY_TAGS, policy_tags
from worker.domain.naming import TAG_KEY_MAX, TAG_VALUE_MAX
from worker.domain.ownership import Owner
from worker.domain.policy import Overlap, Policy, PolicyDefinition, Schedule, run_key
from worker.domain.retirement import lineage_tags, source_lineage


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


def test_an_interval_runs_every_so_many_seconds() -> None:
    assert Schedule(every=90).next_after(1000.0) == 1090.0


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("*/15 3 * * 1-5", (2026, 12, 7, 3, 7), (2026, 12, 7, 3, 15)),  # a Monday
        ("*/15 3 * * 1-5", (2026, 12, 7, 3, 15), (2026, 12, 7, 3, 30)),  # strictly after
        ("*/15 3 * * 1-5", (2026, 12, 11, 3, 50), (2026, 12, 14, 3, 0)),  # Friday's last: Monday's first
        ("0 0 1 * *", (2026, 12, 6, 22, 0), (2027, 1, 1, 0, 0)),
    ],
)
def test_cron_gives_the_next_time_in_utc(cron: str, after: tuple, expected: tuple) -> None:
    assert Schedule(cron=cron).next_after(_at(*after)) == _at(*expected)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give exactly one of every (seconds) and cron"),
        ({"every": 60, "cron": "* * * * *"}, "give exactly one"),
        ({"cron": "* * * *"}, "must have 5 fields"),
        ({"cron": "99 * * * *"}, "is not a cron expression Celery accepts"),
        ({"cron": "* * * * funday"}, "is not a cron expression Celery accepts"),
        ({"every": 0}, "greater than or equal to 1"),
    ],
)
def test_a_bad_schedule_says_why(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Schedule(**fields)


def _policy(**definition) -> Policy:
    fields = {"name": "p", "selector": {}, "template": {}, "schedule": Schedule(every=60), **definition}
    return Policy(
        id="a" * 32,
        definition=PolicyDefinition(**fields),
        account="default",
        region="cn-north-4",
        owner=Owner.of("alice", ["default"]),
        created_at=10.0,
        updated_at=10.0,
        next_run_at=70.0,
    )


def test_a_policy_is_stored_and_read_back_whole() -> None:
    policy = _policy(overlap=Overlap.WAIT, selector={"fast_create": False})
    meta = {**policy.to_meta(), "runs": "3", "last_batch": "b" * 32, "starting": "4"}
    again = Policy.from_meta(meta)
    assert again.definition == policy.definition and again.owner == policy.owner
    assert (again.runs, again.last_batch, again.starting, again.next_run_at) == (3, "b" * 32, 4, 70.0)


def test_a_changed_schedule_or_a_resume_runs_from_now_and_a_pause_has_no_next_run() -> None:
    policy = _policy()
    assert policy.changed(policy.definition.model_copy(update={"name": "q"}), 50.0).next_run_at == 70.0
    new = policy.definition.model_copy(update={"schedule": Schedule(every=120)})
    assert policy.changed(new, 50.0).next_run_at == 170.0
    paused = policy.changed(policy.definition.model_copy(update={"paused": True}), 50.0)
    assert paused.next_run_at is None
    assert paused.changed(policy.definition, 80.0).next_run_at == 140.0


def test_provenance_tags_fit_ims_limits_and_run_keys_are_no_principals() -> None:
    born = datetime(2026, 12, 1, 10, 15, tzinfo=timezone.utc)
    lineage = lineage_tags(source_lineage("x" * 120, None), born)
    tags = policy_tags("f" * 32, "0d944950-f21f-5d2f-93dd-72353bf37a89", lineage)
    assert set(tags) <= set(POLICY_TAGS)
    assert all(len(k) <= TAG_KEY_MAX and len(v) <= TAG_VALUE_MAX for k, v in tags.items())
    assert ":" not in run_key("f" * 32, 7)  # a principal's key is "<name>:<key>": none can be this
