"""Gateway behaviour: unknown APIs, request IDs, the per-project rate limit, and every fault knob."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"
NO_API = "The API does not exist or has not been published in the environment"


def test_unknown_apis_answer_like_the_gateway(sim: Callable[..., Any]) -> None:
    server = sim()
    client = server.client()
    for response in (
        server.plain.get("/v2/nothing"),
        server.plain.delete("/v2/cloudimages"),
        client.get("/v1/cloudimages/x/copy"),
        server.plain.get("/"),
        server.plain.get("/v2/cloudimages/"),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "error_code": "APIGW.0101",
            "error_msg": NO_API,
            "request_id": response.headers["x-request-id"],
        }
    assert server.introspect("stats")["by_endpoint"]["unknown"] == {"404": 5}
    ids = {client.get("/v2/cloudimages").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_rate_limit_per_project(sim: Callable[..., Any]) -> None:
    server = sim(project_ids=[PROJECT, OTHER], request_rate=5)
    mine, theirs = server.client(), server.client(OTHER)
    start = time.monotonic()
    statuses = [mine.get("/v2/cloudimages").status_code for _ in range(20)]
    elapsed = time.monotonic() - start
    allowed = statuses.count(200)
    assert statuses.count(429) == 20 - allowed >= 1
    assert allowed <= 5 + elapsed * 5 + 1  # one second of burst plus the refill
    throttled = mine.get("/v2/cloudimages")
    if throttled.status_code == 429:
        assert throttled.json() == {
            "error_code": "APIGW.0308",
            "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second",
            "request_id": throttled.headers["x-request-id"],
        }
    assert theirs.get("/v2/cloudimages").status_code == 200  # each project has its own bucket
    assert server.introspect("stats")["faults"]["rate_limited"] == statuses.count(429) + (throttled.status_code == 429)


@pytest.mark.parametrize(
    ("knob", "check"),
    [
        (
            "error_rate",
            lambda r: (
                r.status_code in (502, 503, 504)
                and r.json()["error_code"] in ("APIGW.0201", "APIGW.0613")
                and r.json()["request_id"]
            ),
        ),
        ("throttle_rate", lambda r: r.status_code == 429 and r.json()["error_code"] == "APIGW.0308"),
    ],
)
def test_error_and_throttle_knobs(sim: Callable[..., Any], knob: str, check: Callable[[Any], bool]) -> None:
    server = sim(**{knob: 1.0})
    client = server.client()
    for _ in range(5):
        assert check(client.get("/v2/cloudimages"))
    # The faults come after authentication: a bad signature is still a 401.
    assert client.get("/v2/cloudimages", tamper=lambda h: h.pop("Authorization")).status_code == 401
    # Knobs change at runtime.
    assert server.control("faults", {knob: 0}).json()[knob] == 0
    assert client.get("/v2/cloudimages").status_code == 200
    assert server.introspect("stats")["faults"][knob.split("_")[0]] == 5


def test_error_apis_confine_injected_errors_to_the_apis_named(sim: Callable[..., Any]) -> None:
    server = sim()
    client = server.client()
    image = client.image_named("centos-7-app")["id"]
    assert server.control("faults", {"error_rate": 1, "error_apis": ["tags_action"]}).status_code == 200
    tag = {"action": "create", "tags": [{"key": "k", "value": "v"}]}
    assert client.post(f"/v2/{PROJECT}/images/{image}/tags/action", tag).status_code in (502, 503, 504)
    assert client.get("/v2/cloudimages").status_code == 200  # not named: untouched
    assert server.control("faults", {"error_apis": []}).json()["error_apis"] == []  # empty: every API again
    assert client.get("/v2/cloudimages").status_code in (502, 503, 504)
    assert server.introspect("stats")["faults"]["error"] == 2
    for bad in ("tags_action", [""], [1]):
        response = server.control("faults", {"error_apis": bad})
        assert response.status_code == 400 and "error_apis" in response.json()["error"]


def test_latency_knob(sim: Callable[..., Any]) -> None:
    server = sim(latency=0.3)
    client = server.client()
    start = time.monotonic()
    assert client.get("/v2/cloudimages").status_code == 200
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    server.introspect("health")  # /_sim/ is not slowed down
    assert time.monotonic() - start < 0.3


def test_a_hung_request_takes_effect_and_answers_late_without_blocking_the_server(sim: Callable[..., Any]) -> None:
    server = sim(hang_seconds=2, copy_seconds=30)
    client = server.client()
    image = client.image_named("centos-7-app")["id"]
    server.control("faults", {"hang_rate": 1})
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.copy(image, {"name": "lost answer"}, timeout=0.5)
    # While that answer is held back the server goes on serving, and the copy has started.
    (job,) = server.introspect("jobs")["jobs"]
    assert job["image_name"] == "lost answer" and job["status"] in ("INIT", "RUNNING")
    late = client.get("/v2/cloudimages", timeout=10)
    assert late.status_code == 200 and time.monotonic() - started >= 2
    assert server.introspect("stats")["faults"]["hang"] == 2
    assert server.introspect("stats")["by_endpoint"]["copy"] == {"200": 1}


def run_script(server: Any) -> list[Any]:
    """The same sequence of calls against any server: statuses and job outcomes."""
    client = server.client()
    outcome: list[Any] = [client.get("/v2/cloudimages").status_code for _ in range(30)]
    server.control("faults", {"error_rate": 0, "throttle_rate": 0})
    source = client.image_named("debian-12-base")["id"]
    jobs = [client.copy(source, {"name": f"copy {i}"}).json()["job_id"] for i in range(12)]
    outcome.append(jobs)
    jobs_view = server.introspect("jobs")["jobs"]
    outcome.append([job["will_fail"] for job in jobs_view])
    return outcome


def test_faults_are_reproducible_from_the_seed(sim: Callable[..., Any]) -> None:
    options = {"error_rate": 0.3, "throttle_rate": 0.2, "fail_rate": 0.5, "copy_seconds": 30, "job_limit": 20}
    first, again, other = (run_script(sim(seed=seed, **options)) for seed in (42, 42, 43))
    assert first == again
    assert first != other
    statuses = first[:30]
    assert {200, 429} <= set(statuses) and set(statuses) & {502, 503, 504}
    assert True in first[-1] and False in first[-1]


def test_bad_knob_changes_are_refused(sim: Callable[..., Any]) -> None:
    server = sim()
    for body in ({"fail_rate": 2}, {"latency": -1}, {"bogus": 1}, {"error_rate": "high"}, [1]):
        response = server.control("faults", body)
        assert response.status_code == 400 and response.json()["error"]
    assert server.plain.get("/_sim/faults").json() == {
        "fail_rate": 0.0,
        "error_rate": 0.0,
        "error_apis": [],
        "throttle_rate": 0.0,
        "latency": 0.0,
        "hang_rate": 0.0,
        "hang_seconds": 120.0,
        "request_rate": 0.0,
    }
