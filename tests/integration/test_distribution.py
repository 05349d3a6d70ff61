"""A distribution through the real stack (API, worker, beat and the simulator as processes): one encrypted image
decrypted, shared with three receiving projects in one members call, accepted and copied by each under its own key,
one receiver misconfigured (a key it does not have) failing alone, the worker SIGKILLed once the receiver items are
made; the API, the simulator and each receiver's own listing agree, and no receiver has a copy twice."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cli import services
from cli.demo import simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from tests.integration.conftest import SIMULATOR, STACK_ENV
from worker.ims.client import ImsClient

pytestmark = pytest.mark.integration

TEAMS = {"team_a": "a1" * 16, "team_b": "b2" * 16, "team_c": "c3" * 16}  # receiving projects, each an account


@pytest.fixture(scope="module")
def teams_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, StackInfo]]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("distribution"),
        use_simulator=True,
        simulator={**SIMULATOR, "member_job_seconds": 0.2},
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        simulator_accounts=TEAMS,
        env={**STACK_ENV, "IMSREP_ACCOUNTS__DEFAULT__SHARE_PROJECTS": ",".join(TEAMS.values())},
        flower=False,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        yield local, local.start()


def _client(info: StackInfo, project_id: str) -> ImsClient:
    account = simulator_account(info).model_copy(update={"project_id": project_id})
    return ImsClient(account, connect_timeout=5, read_timeout=30)


def test_an_encrypted_image_reaches_each_receiver_under_its_key_and_a_misconfigured_one_fails_alone(
    teams_stack: tuple[LocalStack, StackInfo],
) -> None:
    local, info = teams_stack
    with _client(info, info.simulator_project_id) as ims:
        source = next(i for i in ims.list_images(name="euleros-encrypted"))
    assert source.cmk_id  # encrypted: the copy to share is decrypted first
    receivers = [
        {"account": "team_a", "key": "ims/default", "tags": {"team": "a"}},
        {"account": "team_b"},
        {"account": "team_c", "key": "ims/not-team-c-s"},  # no such key in team_c's project
    ]
    headers = {"Authorization": f"Bearer {info.api_token}"}
    with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api:
        body = {"items": [{"image_id": source.id, "distribute": receivers, "withdraw_share": True}]}
        answer = api.post("/v1/batches", json=body)
        assert answer.status_code == 202, answer.text
        batch_id, (parent_id,) = answer.json()["batch_id"], answer.json()["item_ids"]
        # Mid-distribution (the receiver items made, none ended): a crash, then the worker again.
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["total"] > 1, 60, "the receiver items")
        local.kill("worker")
        local.restart("worker")
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["done"], 90, f"batch {batch_id}")
        parent = api.get(f"/v1/replications/{parent_id}").json()
        items = api.get(f"/v1/batches/{batch_id}/items", params={"limit": 10}).json()["items"]

    assert (parent["state"], parent["reason"]) == ("succeeded", "NOT_DISTRIBUTED"), parent
    distribution = parent["followups"]["distribute"]
    verdicts = {v["account"]: v for v in distribution["receivers"]}
    assert not distribution["withdrawn"]  # team_c has no copy: the share stays for its retry
    children = {i["account"]: i for i in items if i["parent_id"] == parent_id}
    assert set(children) == set(TEAMS) and len(items) == 4
    assert (children["team_c"]["state"], children["team_c"]["reason"]) == ("rejected", "KEY_NOT_FOUND")
    assert (verdicts["team_c"]["state"], verdicts["team_c"]["reason"]) == ("rejected", "KEY_NOT_FOUND")

    with _client(info, info.simulator_project_id) as ims:
        members = {m.member_id: m.status for m in ims.image_members(parent["new_image_id"])}
    assert members == dict.fromkeys(TEAMS.values(), "accepted")  # one share; each receiver accepted it as itself
    for account, key in (("team_a", "ims/default"), ("team_b", None)):
        child, verdict = children[account], verdicts[account]
        assert child["state"] == verdict["state"] == "succeeded" and child["new_image_id"] == verdict["new_image_id"]
        assert verdict["project_id"] == TEAMS[account] and verdict["region"] == info.simulator_region
        with _client(info, TEAMS[account]) as own:
            copy = own.get_image(child["new_image_id"])
            assert copy is not None and copy.owner == TEAMS[account] and copy.status == "active"
            assert copy.cmk_id == (own.find_key(key).key_id if key else None)
            copies = [i.id for i in own.list_images(name=parent["target_name"]) if i.owner == TEAMS[account]]
            assert copies == [copy.id]  # one copy, whatever the crash interrupted
    team_a = children["team_a"]
    assert team_a["tags"] == {"team": "a"} and team_a["followups"]["tags"]["status"] == "applied"
