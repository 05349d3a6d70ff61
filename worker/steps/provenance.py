"""What a policy already copied, read from the cloud rather than from Redis: its copies carry the provenance tags
``imsrep_policy=<policy>`` and ``imsrep_source=<source image>`` (``worker.domain.followups.policy_tags``), so one
listing by tag in the destination project (IMS filters it: ``GET /v2/cloudimages?tag=imsrep_policy=<id>``, paged)
names every source the policy has a copy of, whatever became of its batches, its items or Redis itself.

A run (``worker.steps.select``) and a plan of one (``worker.steps.plan``) read it once, before their first page,
and leave out both the sources already copied and the copies themselves (a selector that matches its own copies
must not copy them again). A copy IMS shows as killed or deleted does not count: its source is copied again. The
source is read from the listed record's tags; a record that does not show them costs one tag read. The same
listing gives retention (``worker.steps.retire``, and a run's pages: ``SelectionSpec.retained``) each live copy's
lineage and its source's age (``worker.domain.retirement``), from the tags the copy was made with.

A copy whose tags never landed (its tagging failed, or Redis lost its item while it was made: IMS's copy calls take
no tags) is not in that listing. Its source's item adopts it (``worker.steps.submit``), and a selector that matches
copies must not take it for a new source either: ``untagged_copies`` knows it by what IMS records at its creation,
``__data_origin`` naming the source and the name the policy's template gives a copy of that source. Retention does
not see it until a run has tagged it: what it cannot tell is the policy's, it never retires.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.domain.retirement import PROVENANCE_BORN, PROVENANCE_LINEAGE, Copy, parse_born
from worker.domain.selector import Template
from worker.ims.client import ImsClient
from worker.ims.models import GONE, Image
from worker.steps.context import StepContext
from worker.steps.validate import destination_project_id


@dataclass(frozen=True)
class Copied:
    copies: frozenset[str]  # the policy's copies in the destination
    sources: frozenset[str]  # the sources they were made from (copies IMS has killed or deleted left out)
    live: tuple[Copy, ...] = ()  # the copies not killed or deleted, with their lineage and their source's age

    @property
    def left_out(self) -> frozenset[str]:
        """Image IDs a run does not select: every source copied, and every copy."""
        return self.copies | self.sources


def listed_copies(destination: ImsClient, policy: str) -> Copied:
    """The policy's copies as one listing by its tag in ``destination`` shows them."""
    copies: set[str] = set()
    sources: set[str] = set()
    live: list[Copy] = []
    for page in destination.image_pages(tag=f"{PROVENANCE_POLICY}={policy}"):
        for image in page:
            copies.add(image.id)
            if image.status in GONE:
                continue
            tags = _tags(destination, image)
            if source := tags.get(PROVENANCE_SOURCE):
                sources.add(source)
            live.append(_copy(image, tags))
    return Copied(frozenset(copies), frozenset(sources), tuple(live))


def _tags(destination: ImsClient, image: Image) -> dict[str, str]:
    """The copy's tags as listed; read on their own when the listing does not show its source."""
    shown = dict(tag.partition("=")[::2] for tag in image.tags)
    return shown if PROVENANCE_SOURCE in shown else destination.image_tags(image.id)


def _copy(image: Image, tags: dict[str, str]) -> Copy:
    """A copy made before it carried its lineage is a lineage of its own, aged by its own creation."""
    source = tags.get(PROVENANCE_SOURCE) or image.id
    created = image.created_at.timestamp() if image.created_at is not None else 0.0
    born = parse_born(tags.get(PROVENANCE_BORN))
    return Copy(
        image_id=image.id,
        source=source,
        lineage=tags.get(PROVENANCE_LINEAGE) or source,
        born=created if born is None else born,
        shared=image.image_type == "shared",
    )


def destination(
    ctx: StepContext, account: str, client: ImsClient, region: str | None, project: str | None
) -> ImsClient | None:
    """A client of the project the policy's copies are made in (None: one IAM does not know)."""
    if region is None:
        return client
    settings = ctx.account(account)
    assert settings is not None and ctx.destinations is not None
    project_id = destination_project_id(ctx, account, settings, client, region, project or region)
    return None if project_id is None else ctx.destinations(account, region, project_id)


def untagged_copies(
    client: ImsClient, template: Template, region: str, page: list[Image], matched: list[Image]
) -> set[str]:
    """Images of ``matched`` that are the policy's own copies without its tags: a copy carrying no policy's tag,
    named as ``template`` names a copy of its source (``region``: the source's). The source's name comes from the
    page, or from one look-up (rare: only a copy this template could have named, until a run tags it); a source
    since deleted leaves the name's pattern to decide."""
    listed = {image.id: image for image in page}
    found: set[str] = set()
    for image in matched:
        source_id = image.copied_from
        if source_id is None or image.tag(PROVENANCE_POLICY) is not None:
            continue
        if not template.copy_name(region, source_id).fullmatch(image.name):
            continue  # no name this template gives: a copy someone else made, a source like any
        source = listed.get(source_id) or client.get_image(source_id)
        if source is None or template.copy_name(region, source_id, source.name).fullmatch(image.name):
            found.add(image.id)
    return found
