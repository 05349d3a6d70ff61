"""Standing policies: create, list, show, change, pause, resume, delete, run now, plan, and their runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api.deps import JsonBody, PoliciesDep, PrincipalDep
from api.openapi import LOCATION, errors_doc, json_body_doc
from api.policy_schemas import PoliciesOut, PolicyOut, PolicyRequest, RunOut, RunRequested, RunsOut
from api.schemas import PlanAccepted

router = APIRouter(prefix="/policies", tags=["policies"])

PolicyId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Policy ID (32 lowercase hex characters)")]
_NOT_FOUND = errors_doc(e404="No such policy (or not in the caller's scope)")
_CHANGE = errors_doc(e404="No such policy", e403="The role, or a submitter's not being its owner, forbids it")
_EXAMPLES = {
    "fast-create": {
        "summary": "Every new image without Fast Create gets a Fast-Create copy, checked hourly",
        "value": {
            "name": "fast-create",
            "selector": {"fast_create": False},
            "template": {"name": "{name}-fc"},
            "schedule": {"every": 3600},
            "retention": {"keep_last": 3, "action": "delete"},
        },
    },
    "golden": {
        "summary": "Golden images copied to cn-south-1 every weekday at 03:00 UTC",
        "value": {
            "name": "golden-south",
            "selector": {"name_prefix": "golden-"},
            "template": {"target_region": "cn-south-1"},
            "schedule": {"cron": "0 3 * * 1-5"},
            "overlap": "wait",
        },
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a standing policy",
    description=(
        "The selector and template are checked as a campaign's (a 422 names each field and rule), the schedule "
        "(`every` at least IMSREP_POLICY_MIN_INTERVAL seconds, or a 5-field `cron` in UTC), the template's tags "
        "(room for the provenance tags) and the retention rule. An interval's first run is due at once, a cron "
        "schedule's at its next time."
    ),
    openapi_extra=json_body_doc(PolicyRequest, _EXAMPLES),
    responses=errors_doc(
        e422="A bad definition; nothing stored", e403="The role or the account forbids it", e413="Body too large"
    ),
)
def create_policy(body: JsonBody, policies: PoliciesDep, who: PrincipalDep, response: Response) -> PolicyOut:
    policy = policies.create(who, body)
    response.headers["Location"] = f"/v1/policies/{policy.id}"
    return PolicyOut.of(policy)


@router.get("", summary="The policies in the caller's scope, oldest first")
def list_policies(policies: PoliciesDep, who: PrincipalDep) -> PoliciesOut:
    return PoliciesOut(policies=[PolicyOut.of(p) for p in policies.every(who)])


@router.get("/{policy_id}", summary="One policy", responses=_NOT_FOUND)
def get_policy(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep) -> PolicyOut:
    return PolicyOut.of(policies.get(who, policy_id))


@router.patch(
    "/{policy_id}",
    summary="Change a policy",
    description="Any of the creation fields; the definition is checked whole again. A new schedule runs from now.",
    openapi_extra=json_body_doc(PolicyRequest, {}),
    responses={**_CHANGE, **errors_doc(e422="A bad definition; nothing changed", e413="Body too large")},
)
def update_policy(policy_id: PolicyId, body: JsonBody, policies: PoliciesDep, who: PrincipalDep) -> PolicyOut:
    return PolicyOut.of(policies.update(who, policy_id, body))


@router.post("/{policy_id}/pause", summary="Pause: no run starts (one under way goes on)", responses=_CHANGE)
def pause_policy(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep) -> PolicyOut:
    return PolicyOut.of(policies.pause(who, policy_id, paused=True))


@router.post("/{policy_id}/resume", summary="Resume: the next run is due by the schedule from now", responses=_CHANGE)
def resume_policy(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep) -> PolicyOut:
    return PolicyOut.of(policies.pause(who, policy_id, paused=False))


@router.delete(
    "/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a policy and its runs' history (its batches and its copies stay)",
    responses=_CHANGE,
)
def delete_policy(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep) -> Response:
    policies.delete(who, policy_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{policy_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run now",
    description="The next run is due now and a worker is asked to start it; the overlap rule applies as to any run.",
    responses={202: {"description": "Due now", "headers": LOCATION}, **_CHANGE, **errors_doc(e409="Paused")},
)
def run_policy(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep, response: Response) -> RunRequested:
    policy = policies.run_now(who, policy_id)
    response.headers["Location"] = f"/v1/policies/{policy_id}/runs"
    return RunRequested(policy_id=policy_id, run=policy.runs + 1)


@router.post(
    "/{policy_id}/plan",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Plan the next run: what it would copy, with a batch plan's verdicts, and what it would retire",
    description="Answers a plan (`GET /v1/plans/{plan_id}`); the sources the policy already copied are left out, "
    "and with a retention rule its summary's `retirements` say what the run's retention would do.",
    responses={202: {"description": "A plan (`Location`)", "headers": LOCATION}, **_CHANGE},
)
def plan_policy(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep, response: Response) -> PlanAccepted:
    stored = policies.plan(who, policy_id)
    response.headers["Location"] = f"/v1/plans/{stored.plan_id}"
    return PlanAccepted(plan_id=stored.plan_id, accepted=0, selecting=True)


@router.get(
    "/{policy_id}/runs",
    summary="The policy's latest runs, newest first, with their batches' counts, the copies made and retired",
    responses=_NOT_FOUND,
)
def list_policy_runs(policy_id: PolicyId, policies: PoliciesDep, who: PrincipalDep) -> RunsOut:
    runs = [RunOut.of(run, batch, retired) for run, batch, retired in policies.runs(who, policy_id)]
    return RunsOut(policy_id=policy_id, runs=runs)
