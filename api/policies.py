"""What the policy routes do, without HTTP: create, read, change, pause, resume, delete, run now and plan standing
policies, with the same roles and scope as batches (docs/teams.md): a submitter creates policies and changes its
own, an operator any in its accounts, and what is out of a principal's scope answers 404."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from api import access, audit
from api.enqueue import Enqueuer
from api.errors import Conflict, NotFound
from api.policy_validation import parse_policy
from api.principals import Principal
from api.validation import Selection, receiver_projects
from config.settings import Role, Settings
from worker.data import BatchSummary, DataLayer, PolicyStatus, Run, StoredPlan
from worker.data.plans import PAGE
from worker.domain.ownership import Owner
from worker.domain.policy import Policy

RUNS_SHOWN = 100  # the latest runs GET .../runs answers


def _limit(who: Principal) -> int | None:
    """The unfinished-items limit the workers hold the principal's runs to (``worker.steps.runs``): they do not
    read the principals, so the policy carries it."""
    return None if who.limits is None else who.limits.max_unfinished_items


class PolicyService:
    def __init__(self, data: DataLayer, enqueuer: Enqueuer, settings: Settings) -> None:
        self.data = data
        self.enqueuer = enqueuer
        self.settings = settings

    def create(self, who: Principal, payload: Any) -> Policy:
        access.need(who, Role.SUBMITTER, "creating a policy")
        definition, selection = parse_policy(payload, self.settings)
        self._asked(who, selection)
        now = time.time()
        schedule = definition.schedule
        # An interval's first run is now; a cron schedule's first is its next time.
        first = now if schedule.every is not None else schedule.next_after(now)
        policy = Policy(
            id=uuid.uuid4().hex,
            definition=definition,
            account=selection.account,
            region=selection.region,
            owner=Owner.of(who.name, selection.accounts),
            created_at=now,
            updated_at=now,
            next_run_at=None if definition.paused else first,
            max_unfinished=_limit(who),
        )
        self.data.policies.save(policy)
        audit.facts().policy_id = policy.id
        return policy

    def _asked(self, who: Principal, selection: Selection) -> None:
        """Audit what the definition asks for; 403 naming each account it acts in (the selector's, its receivers')
        that is out of ``who``'s scope, as for a batch's items."""
        receivers = receiver_projects(self.settings, [selection.template])
        audit.facts().asked([], selection.accounts, selection.template, receivers)
        access.may_act_in(who, selection.accounts)

    def every(self, who: Principal) -> list[Policy]:
        return self.data.policies.every(lambda policy: access.sees(who, policy.owner))

    def statuses(self, policies: list[Policy]) -> list[PolicyStatus]:
        """Each policy with its latest run, outcome, lag and copies (read in three round trips for all)."""
        return self.data.policy_statuses(policies)

    def get(self, who: Principal, policy_id: str) -> Policy:
        policy = self.data.policies.load(policy_id)
        missing = f"policy {policy_id} not found"
        if policy is None:
            raise NotFound(missing)
        access.in_scope(who, policy.owner, missing)
        return policy

    def _changing(self, who: Principal, policy_id: str, action: str) -> Policy:
        """The policy ``who`` may act on; when ``who`` is its principal, with the limit ``who`` has now (a changed
        limit reaches the runs when the principal next changes, pauses or resumes its policy)."""
        policy = self.get(who, policy_id)
        audit.facts().acted_on(policy.owner)
        access.may_change(who, policy.owner, action)
        return replace(policy, max_unfinished=_limit(who)) if who.name == policy.owner.principal else policy

    def update(self, who: Principal, policy_id: str, payload: Any) -> Policy:
        """Replace the fields ``payload`` gives; the whole definition is checked again, as at creation."""
        policy = self._changing(who, policy_id, "changing a policy")
        definition, selection = parse_policy(payload, self.settings, policy.definition)
        self._asked(who, selection)
        changed = replace(
            policy.changed(definition, time.time()),
            account=selection.account,
            region=selection.region,
            owner=Owner.of(policy.owner.principal, selection.accounts),
        )
        self.data.policies.save(changed)
        return changed

    def pause(self, who: Principal, policy_id: str, *, paused: bool) -> Policy:
        """Pause (no run is started; a run under way goes on) or resume (the next run from now on)."""
        policy = self._changing(who, policy_id, "pausing a policy" if paused else "resuming a policy")
        if policy.paused == paused:
            return policy
        changed = policy.changed(policy.definition.model_copy(update={"paused": paused}), time.time())
        self.data.policies.save(changed)
        return changed

    def delete(self, who: Principal, policy_id: str) -> None:
        """Delete the policy and its runs' history; its batches stay, and so do its copies."""
        self._changing(who, policy_id, "deleting a policy")
        if not self.data.policies.delete(policy_id):
            raise NotFound(f"policy {policy_id} not found")

    def run_now(self, who: Principal, policy_id: str) -> Policy:
        """Make the next run due now and ask a worker to start it (the overlap rule applies as to any run)."""
        policy = self._changing(who, policy_id, "running a policy")
        if policy.paused:
            raise Conflict(f"policy {policy_id} is paused: resume it to run it")
        self.data.policies.due_now(policy_id, time.time())
        self.enqueuer.send_runs()
        return policy

    def plan(self, who: Principal, policy_id: str) -> StoredPlan:
        """A plan of the next run: the policy's selection judged like a batch plan's, the images it already
        copied left out as a run leaves them out."""
        policy = self._changing(who, policy_id, "planning a policy")
        now = time.time()
        stored = self.data.plans.create(
            [],
            ttl=self.settings.plan_seconds,
            first_stage=PAGE,
            selection=policy.selection(now),
            label=policy.name,
            now=now,
            owner=policy.owner,
        )
        audit.facts().plan_id = stored.plan_id
        self.enqueuer.send_plan(stored.plan_id, PAGE)  # a failure is logged; the reconciler sends it again
        return stored

    def runs(self, who: Principal, policy_id: str) -> list[tuple[Run, BatchSummary | None, list[dict[str, Any]]]]:
        """The latest runs, newest first, each with its batch as it is now (None: skipped, or deleted since) and
        its retention's verdicts."""
        self.get(who, policy_id)
        runs = self.data.policies.runs(policy_id, limit=RUNS_SHOWN)
        retirements = self.data.policies.retirements(policy_id, [run.run for run in runs])
        return [
            (run, self.data.records.batch(run.batch_id) if run.batch_id else None, retirements.get(run.run, []))
            for run in runs
        ]
