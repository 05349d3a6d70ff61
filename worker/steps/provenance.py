"""What a policy already copied, read from the cloud rather than from Redis: its copies carry the provenance tags
``imsrep_policy=<policy>`` and ``imsrep_source=<source image>`` (``worker.domain.followups.policy_tags``), so one
listing by tag in the destination project (IMS filters it: ``GET /v2/cloudimages?tag=imsrep_policy=<id>``, paged)
names every source the policy has a copy of, whatever became of its batches, its items or Redis itself.

A run (``worker.steps.select``) and a plan of one (``worker.steps.plan``) read it once, before their first page,
and leave out both the sources already copied and the copies themselves (a selector that matches its own copies
must not copy them again). A copy IMS shows as killed or deleted does not count: its source is copied again. The
source is read from the listed record's tags; a record that does not show them costs one tag read.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.ims.client import ImsClient
from worker.ims.models import GONE
from worker.steps.context import StepContext
from worker.steps.validate import destination_project_id


@dataclass(frozen=True)
class Copied:
    copies: frozenset[str]  # the policy's copies in the destination
    sources: frozenset[str]  # the sources they were made from (copies IMS has killed or deleted left out)

    @property
    def left_out(self) -> frozenset[str]:
        """Image IDs a run does not select: every source copied, and every copy."""
        return self.copies | self.sources


def copied(
    ctx: StepContext, policy: str, account: str, client: ImsClient, region: str | None, project: str | None
) -> Copied:
    """The policy's copies in its destination (the account's own project, or ``project`` in ``region``)."""
    destination = _destination(ctx, account, client, region, project)
    if destination is None:  # a destination IAM does not know: no copy can be there (its items are refused)
        return Copied(frozenset(), frozenset())
    copies: set[str] = set()
    sources: set[str] = set()
    for page in destination.image_pages(tag=f"{PROVENANCE_POLICY}={policy}"):
        for image in page:
            copies.add(image.id)
            if image.status in GONE:
                continue
            source = image.tag(PROVENANCE_SOURCE)
            if source is None:
                source = destination.image_tags(image.id).get(PROVENANCE_SOURCE)
            if source:
                sources.add(source)
    return Copied(frozenset(copies), frozenset(sources))


def _destination(
    ctx: StepContext, account: str, client: ImsClient, region: str | None, project: str | None
) -> ImsClient | None:
    if region is None:
        return client
    settings = ctx.account(account)
    assert settings is not None and ctx.destinations is not None
    project_id = destination_project_id(ctx, account, settings, client, region, project or region)
    return None if project_id is None else ctx.destinations(account, region, project_id)
