"""A distribution's receivers: their syntax, their count and uniqueness, and the rules against the configured accounts
and the source account's guardrails (``share_projects``, ``copy_regions``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import AccountSettings
from worker.domain.distribution import MAX_MEMBERS, Receiver, distribution_problems, receivers_problem
from worker.domain.item import ReplicationItem
from worker.domain.states import ItemState

SOURCE, TEAM_A, TEAM_B, SOUTH = "a" * 32, "b" * 32, "c" * 32, "d" * 32


def _account(project_id: str, region: str = "cn-north-4", **fields: object) -> AccountSettings:
    return AccountSettings(project_id=project_id, region=region, access_key="AK", secret_key="SK", **fields)


ACCOUNTS = {
    "golden": _account(SOURCE, share_projects=[TEAM_A, SOUTH], copy_regions=["cn-south-1"]),
    "team-a": _account(TEAM_A),
    "team-b": _account(TEAM_B),
    "south": _account(SOUTH, region="cn-south-1"),
}


def _problems(*receivers: dict, **kwargs: object) -> list[tuple[str, str]]:
    return distribution_problems([Receiver(**r) for r in receivers], "golden", ACCOUNTS, **kwargs)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"account": "team a"}, "String should match pattern"),
        ({"account": "team-a", "region": "North 4"}, "must be a region ID"),
        ({"account": "team-a", "key": "not a key!"}, "must be a KMS key ID \\(UUID\\) or an alias"),
        ({"account": "team-a", "tags": {"k": "v" * 44}}, "must be at most 43 characters"),
        ({"account": "team-a", "project_id": TEAM_A}, "Extra inputs are not permitted"),
    ],
)
def test_a_receiver_in_the_wrong_form_is_refused_naming_the_rule(fields: dict, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        Receiver(**fields)


def test_a_list_of_receivers_holds_one_to_the_member_limit_each_once() -> None:
    one = Receiver(account="team-a", key="ims/team-a")
    assert receivers_problem([one]) is None
    assert receivers_problem([]) == f"must list 1 to {MAX_MEMBERS} receivers, IMS's member limit (got 0)"
    many = [Receiver(account=f"team-{i}") for i in range(MAX_MEMBERS + 1)]
    assert receivers_problem(many) == f"must list 1 to {MAX_MEMBERS} receivers, IMS's member limit (got 129)"
    twice = [one, Receiver(account="team-b"), Receiver(account="team-a", key="ims/other")]
    assert receivers_problem(twice) == "must not list a receiver twice (account team-a)"


def test_receivers_in_the_source_accounts_guardrails_and_their_own_regions_pass() -> None:
    assert _problems({"account": "team-a"}, {"account": "south", "region": "cn-south-1", "key": "ims/s"}) == []


def test_each_receiver_breaking_a_rule_is_named_by_its_position() -> None:
    found = _problems(
        {"account": "team-a", "region": "cn-south-1"},  # team-a's project is in cn-north-4
        {"account": "team-b"},  # not in golden's share_projects
        {"account": "golden"},  # the owner of the shared copy
        {"account": "unknown"},  # left to the caller, which names the configured accounts
    )
    assert found == [
        ("distribute.0.region", "account team-a's project is in region cn-north-4, not cn-south-1"),
        (
            "distribute.1",
            f"project {TEAM_B} is not in account golden's share_projects (sharing is refused when the list is empty)",
        ),
        ("distribute.2.account", "is the source account golden, which owns the shared copy"),
    ]


def test_a_receiver_in_a_region_the_source_may_not_copy_to_is_refused() -> None:
    accounts = {**ACCOUNTS, "golden": _account(SOURCE, share_projects=["*"])}
    found = distribution_problems([Receiver(account="south", region="cn-south-1")], "golden", accounts)
    assert found == [
        (
            "distribute.0",
            "region cn-south-1 is not in account golden's copy_regions (none: copies stay "
            "in the account's region); unset, it is the regions configured under the account's regions",
        )
    ]


def test_share_with_and_distribute_name_a_project_once_and_stay_within_the_member_limit() -> None:
    assert _problems({"account": "team-a"}, share_with=[TEAM_A]) == [
        ("distribute.0.account", f"its project {TEAM_A} is in share_with too; give it once")
    ]
    full = [f"{i:032x}" for i in range(MAX_MEMBERS)]
    assert ("distribute", "with share_with, at most 128 member projects in all (IMS's member limit)") in _problems(
        {"account": "team-a"}, share_with=full
    )


def test_an_items_receivers_are_stored_and_read_back() -> None:
    receivers = [Receiver(account="team-a", key="ims/a", tags={"team": "a"}), Receiver(account="team-b")]
    item = ReplicationItem(
        id="i",
        batch_id="b",
        account="golden",
        image_id="x",
        state=ItemState.ACCEPTED,
        created_at=1.0,
        updated_at=1.0,
        distribute=receivers,
    )
    stored = item.to_redis()
    assert stored["distribute"] == '[{"account":"team-a","key":"ims/a","tags":{"team":"a"}},{"account":"team-b"}]'
    assert ReplicationItem.from_redis(stored).distribute == receivers
