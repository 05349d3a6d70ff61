"""Campaigns at size: a selector expanded over a catalogue of N mixed images (images listed and items created per
second, until every selected item is validated), and a plan of N items (seconds to its summary, IMS calls per
item), against the goal: a plan of 10,000 items in under 30 s with at most 0.05 IMS calls per item.

The catalogue mixes the generator's kinds (docs/simulator.md), so the listing carries every kind of record.
Copies are long (``campaign_copy_seconds``): what is measured is listing and judging, not copying.
"""

from __future__ import annotations

import json
import time

from bench import measure
from bench.options import BenchOptions
from bench.report import Figure
from bench.stack import BenchStack, bench_stack
from cli.processes import wait_until
from simulator.catalog.generate import generate

MIX = {"ordinary": 0.8, "encrypted": 0.06, "legacy": 0.04, "iso": 0.03, "full_ecs": 0.03, "not_active": 0.02,
       "oversized": 0.02}  # fmt: skip


def run(opts: BenchOptions) -> list[Figure]:
    n = opts.campaign_images
    workdir = opts.workdir / "campaigns"
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = workdir / "catalog.json"
    catalog.write_text(json.dumps(generate(n, MIX, seed=5, keys=["old-key", "other-key"])))
    simulator = {"copy_seconds": opts.campaign_copy_seconds, "catalog": catalog}
    with bench_stack(workdir / "state", ["default"], simulator) as stack:
        ids = stack.all_image_ids("default")[:n]
        plan_seconds, plan_calls, planned = _plan(stack, {"items": [{"image_id": i} for i in ids]})
        selector_plan_seconds, selector_plan_calls, _ = _plan(stack, {"selector": {"fast_create": True}})
        listed, created, expand_seconds, validated_seconds = _expand(stack, {"fast_create": True})
    name = f"campaigns: {n} mixed images"
    goal_note = "from POST to the plan's summary (quota and forecast included)"
    return [
        Figure(name, f"plan of {planned} items", plan_seconds, "s", goal="<= 30", note=goal_note),
        Figure(name, f"IMS calls per item, plan of {planned} items", plan_calls / max(planned, 1), goal="<= 0.05"),
        Figure(name, "plan of a selector over the catalogue", selector_plan_seconds, "s"),
        Figure(name, "IMS calls per image listed, selector plan", selector_plan_calls / max(n, 1)),
        Figure(name, "selector expansion: images listed per second", listed / expand_seconds, "/s"),
        Figure(name, "selector expansion: items created per second", created / expand_seconds, "/s"),
        Figure(
            name,
            "selector: items created and validated per second",
            created / validated_seconds,
            "/s",
            note="until every item the selector made has left accepted/validating",
        ),
    ]


def _plan(stack: BenchStack, body: dict) -> tuple[float, int, int]:
    """Seconds from POST to the plan's summary, the IMS calls it made, and how many items it judged."""
    before = stack.stats()
    started = time.perf_counter()
    response = stack.api.post("/v1/batches", json={**body, "plan": True})
    response.raise_for_status()
    url = f"/v1/plans/{response.json()['plan_id']}"
    wait_until(lambda: stack.api.get(url).json()["state"] != "planning", 600, url, interval=0.1)
    took = time.perf_counter() - started
    plan = stack.api.get(url).json()
    assert plan["state"] == "done", plan
    calls = measure.calls_between(before, stack.stats(), stack.projects["default"])
    return took, calls, plan["summary"]["items"]


def _expand(stack: BenchStack, selector: dict) -> tuple[int, int, float, float]:
    """Images listed, items created, seconds until the selection was done, and until its items were validated."""
    started = time.perf_counter()
    accepted, _ = stack.submit_body({"selector": selector})
    batch_id = accepted["batch_id"]
    wait_until(lambda: stack.batch(batch_id)["selection"]["state"] != "expanding", 600, "expansion", interval=0.1)
    expanded = time.perf_counter() - started
    stack.wait_batch(batch_id, 600, done="validated")
    validated = time.perf_counter() - started
    selection = stack.batch(batch_id)["selection"]
    stack.api.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
    return selection["listed"], selection["created"], expanded, validated
