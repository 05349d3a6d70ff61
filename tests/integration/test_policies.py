"""A standing policy end to end, on real processes (Redis, simulator, API, worker, beat): a policy every few seconds
over a simulator to which images are added between runs. Every new matching image gets exactly one copy across
the runs, including after Redis loses every batch, item and idempotency key (only the policy itself kept): the
copies' provenance tags are the memory; each run's lag, the policy's metrics and its tasks in Flower show it. And
its retention: keeping two copies per lineage, it deletes exactly the older copies it made, not a same-named image
it did not make, nor a copy a member project has accepted. Its own stack, since it wipes Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import NamedTuple

import httpx
import pytest

from cli import services
from cli.demo import simulator_account
from cli.processes import wait_until
from cli.services import SIMULATOR_SHARE_PROJECT
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from tests.integration.conftest import SIMULATOR, policy_env
from tests.support import accept_share, add_versions
from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.ims.client import ImsClient

EVERY = 3  # seconds between runs


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("policies"),
        use_simulator=True,
        simulator=dict(SIMULATOR),
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        simulator_regions=services.EXAMPLE_REGIONS,
        env=policy_env(EVERY, 0.5),
        stop_grace=DISCARD_STOP_GRACE,
        flower=False,  # none of its tests looks at Flower (tests/ops does)
    )
    with LocalStack(options) as local:
        yield local.start()


class Clients(NamedTuple):
    api: httpx.Client  # the stack's API, as its admin
    sim: httpx.Client  # the simulator's controls
    ims: ImsClient  # the simulator as IMS, in the stack's project


@pytest.fixture
def clients(stack: StackInfo) -> Iterator[Clients]:
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    with (
        httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api,
        httpx.Client(base_url=stack.simulator_url, timeout=30) as sim,
        ImsClient(simulator_account(stack), connect_timeout=5, read_timeout=30) as ims,
    ):
        yield Clients(api, sim, ims)


def test_keeping_two_per_lineage_deletes_only_the_older_copies_it_made(stack: StackInfo, clients: Clients) -> None:
    prefix = f"ret{uuid.uuid4().hex[:6]}-app-v"
    api, sim, ims = clients
    versions = add_versions(stack.simulator_url, prefix, 2)
    # A user's image with the name the policy's copy of v2 gets, outside its selector: not the policy's.
    twin = sim.post("/_sim/images", json={"name": f"old-{prefix}2"}).json()["images"][0]["id"]
    body = {
        "name": "retire-two",
        "selector": {"name_prefix": prefix},
        "template": {"name": "old-{name}", "share_with": [SIMULATOR_SHARE_PROJECT]},
        "schedule": {"every": EVERY},
        "retention": {"keep_last": 2, "action": "delete"},
    }
    created = api.post("/v1/policies", json=body)
    assert created.status_code == 201, created.text
    policy_id = created.json()["policy_id"]

    def copies() -> dict[str, str]:
        """The policy's copies in the cloud, by source."""
        listed = ims.list_images(tag=f"{PROVENANCE_POLICY}={policy_id}")
        return {ims.image_tags(c.id)[PROVENANCE_SOURCE]: c.id for c in listed if c.status == "active"}

    def retirements() -> dict[str, str]:
        """Every run's verdicts, by source (a later run's last)."""
        runs = api.get(f"/v1/policies/{policy_id}/runs").json()["runs"]
        return {j["source"]: j["verdict"] for r in reversed(runs) for j in r["retirements"]}

    wait_until(lambda: set(copies()) == set(versions), 30, "the first two versions' copies")
    first = copies()[versions[0]]
    accept_share(ims, simulator_account(stack), SIMULATOR_SHARE_PROJECT, first)
    versions += add_versions(stack.simulator_url, prefix, 1)
    wait_until(lambda: retirements().get(versions[0]) == "kept_shared", 30, "v1's copy kept, shared")
    second = copies()[versions[1]]
    versions += add_versions(stack.simulator_url, prefix, 1)
    wait_until(lambda: retirements().get(versions[1]) == "retired", 30, "v2's copy retired")

    assert set(copies()) == {versions[0], versions[2], versions[3]}  # v1 shared and accepted; v3, v4 the last two
    assert ims.get_image(second) is None and ims.get_image(first) is not None
    assert ims.get_image(twin) is not None
    runs = api.get(f"/v1/policies/{policy_id}/runs").json()["runs"]
    assert sum(r["retired"] for r in runs) == 1 and sum(r["copies_made"] for r in runs) == 4
    shown = api.get(f"/v1/policies/{policy_id}").json()
    assert (shown["copies_retired"], shown["copies_made"]) == (1, 4)  # the totals imsrep policy status shows
