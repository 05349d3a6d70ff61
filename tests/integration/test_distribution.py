"""A distribution through the real stack (Redis, the simulator with three regions, API, worker and beat as
processes), issue 30's "Done when": one encrypted golden image decrypted, shared and carried into the two other
regions, then accepted and copied by 12 receiving projects (4 per region) each under its own key; a 13th receiver
misconfigured (a key it does not have) fails alone; one receiver's image quota is full, so it waits until the test
raises it; the worker is SIGKILLed twice mid-distribution. The API, the simulator and each receiver's own listing
agree: 12 private copies, every member entry ``accepted`` (the share is kept: ``withdraw_share`` is not asked, and
tests/worker/steps/test_distribute.py covers the withdrawal), and no project has a copy twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.api_client import ApiClient, ApiTarget
from cli.demo import simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from simulator.catalog.records import default_project_id_for
from tests.integration.conftest import SIMULATOR, STACK_ENV
from tests.support import CRASH_TIMINGS, fast_env
from worker.ims.client import ImsClient

pytestmark = pytest.mark.integration

NORTH, SOUTH, EAST = "cn-north-4", "cn-south-1", "cn-east-3"  # the simulator's first region, then two more
# Receiving projects, each an account: four per region (``n_1``: project a1a1..., in NORTH), and a misconfigured one.
PREFIXES = {"n": ("a", NORTH), "s": ("b", SOUTH), "e": ("c", EAST)}
TEAMS = {f"{p}_{n}": f"{digit}{n}" * 16 for p, (digit, _) in PREFIXES.items() for n in range(1, 5)}
REGION_OF = {name: PREFIXES[name[0]][1] for name in TEAMS}
MISCONFIGURED = {"n_bad": "d0" * 16}  # no key ims/not-mine in its project
FULL = "s_1"  # the receiver whose image quota is full until the test raises it


@pytest.fixture(scope="module")
def teams_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, StackInfo]]:
    accounts = {**TEAMS, **MISCONFIGURED}
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("distribution"),
        use_simulator=True,
        # Copies long enough that a crash lands amid them, member jobs short.
        simulator={**SIMULATOR, "copy_seconds": 0.5, "member_job_seconds": 0.2},
        simulator_accounts=accounts,
        simulator_account_regions={name: region for name, region in REGION_OF.items() if region != NORTH},
        simulator_regions=(SOUTH, EAST),
        env={
            **STACK_ENV,
            # A step running when the worker is killed is resent past a 6 s time limit, not production's 90 s.
            **fast_env(poll_initial_delay=0.25, **CRASH_TIMINGS),
            "IMSREP_ACCOUNTS__DEFAULT__SHARE_PROJECTS": ",".join(accounts.values()),
            # The full quota is read again soon once raised (production: a minute).
            "IMSREP_QUOTA_REFRESH_SECONDS": "0.5",
        },
        beat=True,
        flower=False,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        yield local, local.start()


def _client(info: StackInfo, project_id: str, region: str = NORTH) -> ImsClient:
    """IMS as ``project_id`` of ``region``, reached on that region's port."""
    endpoint = info.simulator_regions.get(region, info.simulator_url)
    update = {"project_id": project_id, "region": region, "ims_endpoint": endpoint, "kms_endpoint": endpoint}
    return ImsClient(simulator_account(info).model_copy(update=update), connect_timeout=5, read_timeout=30)


def _items(info: StackInfo, batch_id: str) -> list[dict[str, Any]]:
    with ApiClient(ApiTarget(info.api_url, info.api_token)) as client:
        return list(client.items(batch_id))


def _receivers(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The receiver items by account (the cross-region carriers are the source account's)."""
    return {i["account"]: i for i in items if i["parent_id"] and i["account"] != "default"}


def test_a_golden_image_reaches_12_projects_in_3_regions_through_two_crashes_and_a_full_quota(
    teams_stack: tuple[LocalStack, StackInfo],
) -> None:
    local, info = teams_stack
    with _client(info, info.simulator_project_id) as ims:
        source = next(i for i in ims.list_images(name="euleros-encrypted"))
    assert source.cmk_id  # encrypted: the copy to share is decrypted first
    limits = f"{info.simulator_url}/_sim/projects/{TEAMS[FULL]}"
    with _client(info, TEAMS[FULL], SOUTH) as full:
        assert httpx.post(limits, json={"image_quota": full.get_quota().used}).status_code == 200
    receivers = [{"account": name, "region": region, "key": "ims/default"} for name, region in REGION_OF.items()]
    receivers.append({"account": "n_bad", "key": "ims/not-mine"})
    receivers[0]["tags"] = {"team": "n_1"}
    headers = {"Authorization": f"Bearer {info.api_token}"}
    with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api:
        answer = api.post("/v1/batches", json={"items": [{"image_id": source.id, "distribute": receivers}]})
        assert answer.status_code == 202, answer.text
        batch_id, (parent_id,) = answer.json()["batch_id"], answer.json()["item_ids"]

        # Crash 1: the parent's receiver items and carriers just made, none ended.
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["total"] > 1, 90, "the receiver items", 0.2)
        local.kill("worker")
        local.restart("worker")

        # Crash 2: a copy of another region's receiver under way.
        def copying_elsewhere() -> bool:
            states = (_receivers(_items(info, batch_id)).get(n, {}).get("state") for n in REGION_OF if n[0] != "n")
            return any(state in ("submitting", "replicating") for state in states)

        wait_until(copying_elsewhere, 90, "a receiver's copy in another region", 0.2)
        local.kill("worker")
        local.restart("worker")

        # Every other receiver ends while the full one waits in its own line for quota; then the quota is raised.
        def the_others_ended() -> bool:
            found = _receivers(_items(info, batch_id))
            others = [found.get(n, {}).get("state") for n in [*TEAMS, *MISCONFIGURED] if n != FULL]
            return all(state in ("succeeded", "rejected", "failed") for state in others)

        wait_until(the_others_ended, 120, "every receiver but the one without quota", 0.2)
        waiting = api.get(f"/v1/replications/{_receivers(_items(info, batch_id))[FULL]['item_id']}").json()
        assert (waiting["state"], waiting["blocked_by"]) == ("waiting", "quota"), waiting
        assert httpx.post(limits, json={"image_quota": 100_000}).status_code == 200
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["done"], 90, f"batch {batch_id}", 0.2)
        parent = api.get(f"/v1/replications/{parent_id}").json()
        items = _items(info, batch_id)

    assert (parent["state"], parent["reason"]) == ("succeeded", "NOT_DISTRIBUTED"), parent
    distribution = parent["followups"]["distribute"]
    verdicts = {v["account"]: v for v in distribution["receivers"]}
    assert not distribution["withdrawn"]
    children = _receivers(items)
    carriers = {i["target_region"]: i for i in items if i["parent_id"] == parent_id and i["account"] == "default"}
    assert set(children) == set(TEAMS) | set(MISCONFIGURED) and set(carriers) == {SOUTH, EAST}
    assert len(items) == 1 + len(carriers) + len(children)  # nothing made twice across the crashes
    # The misconfigured receiver fails alone, and its verdict says why.
    assert (children["n_bad"]["state"], children["n_bad"]["reason"]) == ("rejected", "KEY_NOT_FOUND")
    assert (verdicts["n_bad"]["state"], verdicts["n_bad"]["reason"]) == ("rejected", "KEY_NOT_FOUND")

    # One share per region (the parent's copy here, each carrier's there), every receiver of it accepted as itself.
    shared = {NORTH: (info.simulator_project_id, parent)}
    shared.update({region: (default_project_id_for(region), carriers[region]) for region in (SOUTH, EAST)})
    for region, (owner, item) in shared.items():
        assert item["state"] == "succeeded", item
        with _client(info, owner, region) as ims:
            members = {m.member_id: m.status for m in ims.image_members(item["new_image_id"])}
            copies = [i.id for i in ims.list_images(name=parent["target_name"]) if i.owner == owner]
        expected = {pid for name, pid in {**TEAMS, **MISCONFIGURED}.items() if REGION_OF.get(name, NORTH) == region}
        assert members == dict.fromkeys(expected, "accepted")
        assert copies == [item["new_image_id"]]  # one shared copy per region, whatever the crashes interrupted
    for account, project_id in TEAMS.items():
        child, verdict = children[account], verdicts[account]
        assert child["state"] == verdict["state"] == "succeeded", child
        assert child["new_image_id"] == verdict["new_image_id"]
        assert (verdict["project_id"], verdict["region"]) == (project_id, REGION_OF[account])
        with _client(info, project_id, REGION_OF[account]) as own:
            copy = own.get_image(child["new_image_id"])
            assert copy is not None and copy.owner == project_id and copy.status == "active"
            assert copy.cmk_id == own.find_key("ims/default").key_id  # its own key, not the source's
            copies = [i.id for i in own.list_images(name=parent["target_name"]) if i.owner == project_id]
            assert copies == [copy.id]  # one private copy each: 0 duplicates
    assert len({children[a]["new_image_id"] for a in TEAMS}) == len(TEAMS) == 12
    first = children["n_1"]
    assert first["tags"] == {"team": "n_1"} and first["followups"]["tags"]["status"] == "applied"


def test_a_policys_run_distributes_its_new_copy_to_its_receivers(teams_stack: tuple[LocalStack, StackInfo]) -> None:
    """The same stack, a policy (issue 30 item 1: a distribution as a policy's copy): a new image gets the policy's
    copy, and each of the template's two receivers its own private copy under its own key; the run counts both."""
    _, info = teams_stack
    added = httpx.post(f"{info.simulator_url}/_sim/images", json={"count": 1, "name": "policy-golden-v{n}"}, timeout=30)
    assert added.status_code == 200, added.text
    (source,) = [image["id"] for image in added.json()["images"]]
    receivers = {"n_1": TEAMS["n_1"], "n_2": TEAMS["n_2"]}
    template = {"name": "{name}-fleet", "distribute": [{"account": a, "key": "ims/default"} for a in receivers]}
    body = {"name": "fleet", "selector": {"name_prefix": "policy-golden-"}, "template": template}
    headers = {"Authorization": f"Bearer {info.api_token}"}
    with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api:
        created = api.post("/v1/policies", json={**body, "schedule": {"every": 3600}})
        assert created.status_code == 201, created.text
        path = f"/v1/policies/{created.json()['policy_id']}"
        plan = api.post(f"{path}/plan").headers["Location"]
        wait_until(lambda: api.get(plan).json()["state"] != "planning", 60, "the policy's plan", 0.2)
        (verdict,) = api.get(plan).json()["items"]  # the new image, and where its copy would go
        assert (verdict["image_id"], verdict["verdict"]) == (source, "copy"), verdict
        assert [r["account"] for r in verdict["receivers"]] == list(receivers)
        assert api.post(f"{path}/run").status_code == 202  # due at once anyway: run now spares beat's tick

        def finished_run() -> dict[str, Any] | None:
            runs = api.get(f"{path}/runs").json()["runs"]
            return runs[0] if runs and runs[0]["state"] == "finished" else None

        wait_until(finished_run, 60, "the policy's first run", 0.2)
        run, policy = finished_run(), api.get(path).json()
        items = _items(info, run["batch_id"])

    assert run is not None and (run["copies_made"], run["receiver_copies"]) == (1, 2), run
    assert (policy["copies_made"], policy["receiver_copies"]) == (1, 2)
    (parent,) = [i for i in items if not i["parent_id"]]
    assert parent["image_id"] == source and parent["followups"]["distribute"]["status"] == "applied"
    children = _receivers(items)
    assert set(children) == set(receivers)
    for account, project_id in receivers.items():
        with _client(info, project_id) as own:
            copy = own.get_image(children[account]["new_image_id"])
            assert copy is not None and copy.owner == project_id and copy.copied_from == parent["new_image_id"]
            assert copy.cmk_id == own.find_key("ims/default").key_id  # under the receiver's own key
