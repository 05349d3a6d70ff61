"""A standing policy end to end, on real processes (Redis, simulator, API, worker, beat): a policy every few seconds
over a simulator to which images are added between runs. Every new matching image gets exactly one copy across
the runs, including after Redis loses every batch, item and idempotency key (only the policy itself kept): the
copies' provenance tags are the memory. Each run's lag, the policy's metrics and its tasks in Flower show it. Its
own stack, since it wipes Redis."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli import services
from cli.demo import simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from tests.integration.conftest import SIMULATOR, forget_all_but_policy, policy_env
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
    )
    with LocalStack(options) as local:
        yield local.start()


def test_every_new_image_gets_exactly_one_copy_across_runs_and_a_redis_wipe(stack: StackInfo) -> None:
    prefix = f"pol{uuid.uuid4().hex[:6]}-"
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    with (
        httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api,
        httpx.Client(base_url=stack.simulator_url, timeout=30) as sim,
        ImsClient(simulator_account(stack), connect_timeout=5, read_timeout=30) as ims,
    ):

        def add(count: int) -> list[str]:
            answer = sim.post("/_sim/images", json={"count": count, "name": prefix + "{n}"})
            assert answer.status_code == 200, answer.text
            return [image["id"] for image in answer.json()["images"]]

        def sources() -> Counter[str]:
            """The source of each of the policy's copies, as the cloud has them."""
            copies = ims.list_images(tag=f"{PROVENANCE_POLICY}={policy_id}")
            return Counter(ims.image_tags(copy.id)[PROVENANCE_SOURCE] for copy in copies)

        def runs() -> list[dict[str, Any]]:
            return api.get(f"/v1/policies/{policy_id}/runs").json()["runs"]

        def copied(expected: list[str], after_run: int) -> bool:
            """Every expected source has its copy, and a run begun after ``after_run`` has finished."""
            done = [r for r in runs() if r["run"] > after_run and r["state"] == "finished"]
            return bool(done) and set(sources()) == set(expected)

        added = add(3)
        body = {
            "name": "e2e-policy",
            "selector": {"name_prefix": prefix},
            "template": {"name": "{name}-copy"},  # its copies match the selector as well: they must not be copied
            "schedule": {"every": EVERY},
        }
        created = api.post("/v1/policies", json=body)
        assert created.status_code == 201, created.text
        policy_id = created.json()["policy_id"]

        wait_until(lambda: copied(added, 0), 30, "the first run's copies")
        added += add(2)
        last = runs()[0]["run"]
        wait_until(lambda: copied(added, last), 30, "the new images' copies")

        # Redis forgets every batch, item, run and idempotency key: only the policy's own keys are kept.
        forget_all_but_policy(stack, policy_id)
        added += add(2)
        wait_until(lambda: copied(added, 0), 30, "the copies after the wipe")
        last = runs()[0]["run"]
        wait_until(lambda: any(r["run"] > last and r["state"] == "finished" for r in runs()), 30, "one more run")

        assert sources() == Counter(dict.fromkeys(added, 1))  # each source copied exactly once, nothing else
        latest = next(r for r in runs() if r["state"] == "finished")
        assert latest["total"] == 0 and latest["already_copied"] == len(added)

        # Where users look: each run's lag (none left once every source has its copy), the metrics, and Flower,
        # whose tasks of a run name the policy.
        assert all(r["lag_seconds"] > 0 for r in runs() if r["total"]) and latest["lag_seconds"] == 0
        assert f'imsrep_policy_lag_seconds{{policy="{policy_id}"}} 0.0' in api.get("/metrics").text
        auth = (stack.flower_user, stack.flower_password)
        tasks = httpx.get(f"{stack.flower_url}/api/tasks", params={"limit": 2000}, auth=auth, timeout=30).json()
        named = {t["name"] for t in tasks.values() if f"'policy': '{policy_id}'" in (t["kwargs"] or "")}
        assert {"replication.expand", "replication.poll"} <= named, named
