"""Standing policies in Redis: their definitions, which are due, the claim that starts a run once cluster-wide, and
each policy's runs.

A policy's hash holds its definition (written by the API) and its run fields (written only by the two scripts:
``lua/claim_run.lua`` takes a due run, ``lua/record_run.lua`` records its batch), so saving a changed definition
never undoes a claim. ``P:policies:due`` holds the active policies by when their next run is due, and
``P:policy:<id>:retired`` what each run's retention said of the copies it did not keep (by run, then image).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.domain.policy import Policy
from worker.domain.retirement import Verdict

RETIRED = Verdict.RETIRED.value


@dataclass(frozen=True)
class Run:
    """One run of a policy: its batch, or why it was skipped."""

    run: int
    at: float
    batch_id: str | None = None
    skipped: bool = False
    message: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def of(cls, raw: str) -> Run:
        fields: dict[str, Any] = json.loads(raw)
        return cls(**fields)


@dataclass(frozen=True)
class Finished:
    """A run's batch once it has ended, and the copies it made."""

    batch_id: str
    made: int
    received: int = 0  # its distributions' receivers' copies


class Policies:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys
        self._claim = register(client, "claim_run")
        self._record = register(client, "record_run")

    def save(self, policy: Policy) -> None:
        """Store a new policy, or a changed definition of one (its run fields are left as they are)."""
        k = self._keys
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(k.policy(policy.id), mapping=policy.to_meta())
        pipe.zadd(k.policies(), {policy.id: policy.created_at}, nx=True)
        if policy.next_run_at is None:
            pipe.zrem(k.policies_due(), policy.id)
        else:
            pipe.zadd(k.policies_due(), {policy.id: policy.next_run_at})
        pipe.execute()

    def load(self, policy_id: str) -> Policy | None:
        meta = self._redis.hgetall(self._keys.policy(policy_id))
        return Policy.from_meta(meta) if meta.get("id") == policy_id else None

    def every(self, visible: Callable[[Policy], bool] = lambda _: True) -> list[Policy]:
        """Every policy ``visible`` keeps, oldest first (one round trip for their records)."""
        return [p for p in self._many(self._redis.zrange(self._keys.policies(), 0, -1)) if visible(p)]

    def due(self, now: float, *, limit: int) -> list[Policy]:
        """Active policies whose next run is due at ``now`` (those with a run starting included), soonest first."""
        return self._many(self._redis.zrangebyscore(self._keys.policies_due(), "-inf", now, start=0, num=limit))

    def _many(self, ids: list[str]) -> list[Policy]:
        pipe = self._redis.pipeline(transaction=False)
        for policy_id in ids:
            pipe.hgetall(self._keys.policy(policy_id))
        return [Policy.from_meta(meta) for meta in pipe.execute() if meta.get("id")]

    def delete(self, policy_id: str) -> bool:
        """Delete a policy and its runs' history (its batches are batches like any: they stay); False if none."""
        k = self._keys
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(k.policy(policy_id), k.policy_runs(policy_id), k.policy_retirements(policy_id))
        pipe.zrem(k.policies(), policy_id)
        pipe.zrem(k.policies_due(), policy_id)
        return bool(pipe.execute()[0])

    def due_now(self, policy_id: str, now: float) -> None:
        """Make an active policy's next run due now (run now): the next tick starts it."""
        self._redis.zadd(self._keys.policies_due(), {policy_id: now}, xx=True)

    def claim(
        self,
        policy: Policy,
        now: float,
        next_run_at: float,
        *,
        skipped: str | None = None,
        finished: Finished | None = None,
    ) -> int | None:
        """Take the policy's due run (``skipped``: record it as skipped, saying why); its number, or None when it
        is not due, or another tick took it first. ``finished``: the previous run's batch, ended, whose copies are
        added to the policy's totals with this claim (so once, whoever claims)."""
        k = self._keys
        run = Run(policy.runs + 1, now, skipped=skipped is not None, message=skipped)
        keys = [k.policy(policy.id), k.policy_runs(policy.id), k.policies_due()]
        args = [policy.id, policy.runs, now, next_run_at, "1" if skipped else "0", run.to_json()]
        args += [finished.batch_id, finished.made, finished.received] if finished else ["", 0, 0]
        return int(self._claim(keys=keys, args=args)) or None

    def record(self, policy_id: str, run: Run) -> bool:
        """Record the batch of a claimed run and make the next one due; False if it was already recorded."""
        k = self._keys
        keys = [k.policy(policy_id), k.policy_runs(policy_id), k.policies_due()]
        return bool(self._record(keys=keys, args=[policy_id, run.run, run.batch_id or "", run.to_json()]))

    def run(self, policy_id: str, run: int) -> Run | None:
        raw = self._redis.hget(self._keys.policy_runs(policy_id), str(run))
        return None if raw is None else Run.of(raw)

    def runs_numbered(self, wanted: Sequence[tuple[str, int | None]]) -> list[Run | None]:
        """The runs asked for as (policy ID, run number), in one round trip (None: no number, or no such run)."""
        pipe = self._redis.pipeline(transaction=False)
        for policy_id, run in wanted:
            pipe.hget(self._keys.policy_runs(policy_id), str(run or 0))
        return [None if raw is None else Run.of(raw) for raw in pipe.execute()]

    def retirements_numbered(self, wanted: Sequence[tuple[str, int | None]]) -> list[list[dict[str, Any]]]:
        """The retention verdicts of the runs asked for as (policy ID, run number), in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for policy_id, run in wanted:
            pipe.hget(self._keys.policy_retirements(policy_id), str(run or 0))
        return [json.loads(raw) if raw else [] for raw in pipe.execute()]

    def runs(self, policy_id: str, *, limit: int) -> list[Run]:
        """The policy's latest runs, newest first."""
        found = [Run.of(raw) for raw in self._redis.hvals(self._keys.policy_runs(policy_id))]
        return sorted(found, key=lambda r: r.run, reverse=True)[:limit]

    def record_retirements(self, policy_id: str, run: int, judged: list[dict[str, Any]]) -> None:
        """Add a run's verdicts on copies it did not keep (by image: a step done again updates, never doubles), and
        the copies newly retired to the policy's total (``retired``: what its status and metrics show)."""
        if not judged:
            return
        key = self._keys.policy_retirements(policy_id)

        def merge(pipe: redis.client.Pipeline) -> None:
            raw = pipe.hget(key, str(run))
            merged = {j["image_id"]: j for j in (json.loads(raw) if raw else [])}
            was = {image: j["verdict"] for image, j in merged.items()}
            newly = sum(1 for j in judged if j["verdict"] == RETIRED and was.get(j["image_id"]) != RETIRED)
            exists = pipe.exists(self._keys.policy(policy_id))
            merged.update({j["image_id"]: j for j in judged})
            pipe.multi()
            pipe.hset(key, str(run), json.dumps(list(merged.values()), separators=(",", ":")))
            if newly and exists:  # a policy deleted meanwhile is not brought back as a stray total
                pipe.hincrby(self._keys.policy(policy_id), "retired", newly)

        self._redis.transaction(merge, key)

    def retirements(self, policy_id: str, runs: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The verdicts of each of ``runs`` that has any."""
        if not runs:
            return {}
        found = self._redis.hmget(self._keys.policy_retirements(policy_id), [str(r) for r in runs])
        return {run: json.loads(raw) for run, raw in zip(runs, found, strict=True) if raw}
