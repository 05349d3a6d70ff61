"""``GET /v2/cloudimages``: filters, sorting and marker paging over the images a project sees: its own and those
shared with it (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0602.html; choices in
docs/simulator.md).

Only the documented filters exist here. Anything IMS cannot filter on (a name prefix, "encrypted or not", a size
range) a client must filter itself, on the simulator as on the real service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from simulator.errors import ImsError
from simulator.state import Project
from simulator.timefmt import parse_image_time

DEFAULT_LIMIT = 500
# Documented filters compared by equality with the record's value (booleans as "true"/"false").
EQUALITY_FILTERS = (
    "id",
    "name",
    "status",
    "__imagetype",
    "visibility",
    "owner",
    "virtual_env_type",
    "__system__cmkid",
    "__isregistered",
    "protected",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "__os_bit",
    "__platform",
    "__os_type",
    "__support_kvm",
    "__support_xen",
    "__support_largememory",
    "__support_diskintensive",
    "__support_highperformance",
    "__support_xen_gpu_type",
    "__support_kvm_gpu_type",
    "__support_xen_hana",
    "__support_kvm_infiniband",
    "architecture",
    "flavor_id",
)
SORT_KEYS = ("created_at", "name", "container_format", "disk_format", "status", "id", "size")
TIME_FILTER = re.compile(r"(gt|gte|lt|lte|eq|neq):(.+)")
# The two time forms the page documents: 2018-10-28T10:00:00Z and 2018-10-28 10:00:00 (both UTC).
SPACED_TIME = "%Y-%m-%d %H:%M:%S"
TIME_OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}
SHARED_MEMBER_STATUSES = ("accepted", "rejected", "pending")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _query_time(value: str) -> float:
    try:
        return parse_image_time(value)
    except ValueError:
        return datetime.strptime(value, SPACED_TIME).replace(tzinfo=timezone.utc).timestamp()


def _time_conditions(query: Mapping[str, str]) -> list[tuple[str, str, float]]:
    """``created_at=lt:2018-10-28T10:00:00Z`` and the like, checked before any image is looked at. A repeated
    parameter counts once (its last value), as for every other filter: the page documents one condition."""
    conditions = []
    for field in ("created_at", "updated_at"):
        if field not in query:
            continue
        match = TIME_FILTER.fullmatch(query[field])
        if match is None:
            raise ImsError("IMG.0001")
        try:
            conditions.append((field, match.group(1), _query_time(match.group(2))))
        except ValueError as exc:
            raise ImsError("IMG.0001") from exc
    return conditions


def _matches(image: dict[str, Any], query: Mapping[str, str], times: list[tuple[str, str, float]]) -> bool:
    for name in EQUALITY_FILTERS:
        if name in query and (name not in image or _text(image[name]) != query[name]):
            return False
    if "__whole_image" in query:
        # A missing flag means "not full-ECS".
        whole = _text(image.get("__whole_image", "false")).lower()
        if whole != query["__whole_image"].lower():
            return False
    project = query.get("enterprise_project_id")
    if project not in (None, "all_granted_eps") and image.get("enterprise_project_id") != project:
        return False
    # Tags are listed as "key=value" and filtered in that form (tag=key=value).
    if "tag" in query and query["tag"] not in image.get("tags", []):
        return False
    return all(TIME_OPS[op](parse_image_time(image[field]), wanted) for field, op, wanted in times)


def _limit(query: Mapping[str, str]) -> int:
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError as exc:
        raise ImsError("IMG.0001") from exc
    if limit < 0:
        raise ImsError("IMG.0001")
    return limit


def _shared_status_wanted(query: Mapping[str, str]) -> str:
    """Shared images show in the default list once accepted; ``visibility=shared&member_status=…`` shows those
    in that member status."""
    if query.get("visibility") == "shared" and query.get("member_status") in SHARED_MEMBER_STATUSES:
        return query["member_status"]
    return "accepted"


def list_images(
    project: Project, query: Mapping[str, str], shared: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()
) -> list[dict[str, Any]]:
    """Filtered page: sorted (default ``created_at`` desc), starting after ``marker``, at most ``limit``.

    ``shared`` holds (image, this project's member record) for images of other projects shared with it.
    """
    limit = _limit(query)
    times = _time_conditions(query)
    sort_key = query.get("sort_key", "created_at")
    sort_key = sort_key if sort_key in SORT_KEYS else "created_at"
    descending = query.get("sort_dir", "desc") != "asc"
    status = _shared_status_wanted(query)
    visible = [*project.images.values(), *(image for image, member in shared if member["status"] == status)]
    # Ties break by insertion order: the project's own images first, then shared ones as listed.
    order = {image["id"]: index for index, image in enumerate(visible)}
    order.update(project.image_order)
    ordered = sorted(
        visible,
        key=lambda image: (
            _text(image.get(sort_key)) if sort_key != "size" else image.get("size", 0),
            order[image["id"]],
        ),
        reverse=descending,
    )
    marker = query.get("marker")
    if marker is not None:
        ids = [image["id"] for image in ordered]
        # An unknown marker yields an empty page (a simulator choice; Glance would answer 400).
        ordered = ordered[ids.index(marker) + 1 :] if marker in ids else []
    return [image for image in ordered if _matches(image, query, times)][:limit]
