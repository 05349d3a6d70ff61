"""``--new-images-every`` / ``--new-images-count``: new private images in the home project on a schedule, brought
in by the clock's tick (on a clock the test moves), in the listing, the quota and ``/_sim/stats``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.timefmt import image_time

HOME = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"
CATALOGUE = 10  # images of the built-in catalogue


def new_images(client: Any) -> list[dict[str, Any]]:
    """The images made after the catalogue's (2024), newest first."""
    return client.images(created_at="gt:2025-01-01T00:00:00Z")


def test_every_interval_adds_a_batch_at_its_own_time(app_sim: Callable[..., Any]) -> None:
    server = app_sim(project_ids=(HOME, OTHER), new_images_every=10, new_images_count=2)
    client, start = server.client(HOME), server.clock()
    server.clock.advance(9.9)
    assert new_images(client) == []
    server.clock.advance(0.1)
    first = new_images(client)
    assert len(first) == 2 and {image["created_at"] for image in first} == {image_time(start + 10)}
    assert {image["status"] for image in first} == {"active"}
    # A tick long after brings in every batch due, each at its own time; the listing stays sorted, newest first.
    server.clock.advance(25)
    listed = new_images(client)
    assert [image["created_at"] for image in listed] == [image_time(start + t) for t in (30, 30, 20, 20, 10, 10)]
    assert client.get("/v1/cloudimages/quota").json()["quotas"]["resources"][0]["used"] == CATALOGUE + 6
    # Only the home project gets them.
    assert new_images(server.client(OTHER)) == []
    assert server.introspect("stats")["new_images"] == {"requested": 0, "scheduled": 6, "skipped_at_quota": 0}


def test_names_continue_lineages_and_are_reproducible(app_sim: Callable[..., Any]) -> None:
    def run() -> list[tuple[str, str]]:
        server = app_sim(seed=3, new_images_every=1, new_images_count=3)
        # Images asked for meanwhile draw from their own stream: the scheduled ones stay the same.
        asked = {i["id"] for i in server.control("images", {"count": 2, "name": "asked-v{n}"}).json()["images"]}
        server.clock.advance(4)
        return [(i["name"], i["id"]) for i in new_images(server.client(HOME)) if i["id"] not in asked]

    made = run()
    assert len(made) == 12 and made == run()
    assert all(name.rsplit("-v", 1)[1].isdigit() for name, _ in made)


def test_a_full_quota_skips_batches(app_sim: Callable[..., Any]) -> None:
    server = app_sim(image_quota=CATALOGUE + 3, new_images_every=5, new_images_count=2)
    client = server.client(HOME)
    server.clock.advance(10)
    assert len(new_images(client)) == 3
    server.clock.advance(500)
    assert len(new_images(client)) == 3
    stats = server.introspect("stats")["new_images"]
    assert stats == {"requested": 0, "scheduled": 3, "skipped_at_quota": 2 * 102 - 3}
    # Room made, the next batch is added again.
    server.control(f"projects/{HOME}", {"image_quota": 100})
    server.clock.advance(5)
    assert len(new_images(client)) == 5


def test_no_schedule_by_default(app_sim: Callable[..., Any]) -> None:
    server = app_sim()
    server.clock.advance(600)  # within the signature's 15 minutes of skew
    assert new_images(server.client(HOME)) == []
    assert server.introspect("stats")["new_images"]["scheduled"] == 0


def test_a_real_process_adds_images_on_schedule(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    # Through the stack's simulator options, as `imsrep up` passes them.
    server = sim(new_images_every=0.2, new_images_count=2)
    client = server.client()
    waiter(lambda: len(new_images(client)) >= 4, what="two scheduled batches")
    assert server.introspect("stats")["new_images"]["scheduled"] >= 4
