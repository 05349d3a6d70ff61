"""``GET /v2/cloudimages``: filters, sorting and marker paging over one project's images (docs/simulator.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.errors import ImsError
from simulator.state import Project
from simulator.timefmt import parse_image_time

DEFAULT_LIMIT = 500
# Documented filters compared by equality with the record's value (booleans as "true"/"false").
EQUALITY_FILTERS = (
    "id", "name", "status", "__imagetype", "visibility", "owner", "virtual_env_type", "__system__cmkid",
    "__isregistered", "protected", "container_format", "disk_format", "min_ram", "min_disk", "__os_bit",
    "__platform", "__os_type", "__support_kvm", "__support_xen", "__support_largememory",
    "__support_diskintensive", "__support_highperformance", "__support_xen_gpu_type", "__support_kvm_gpu_type",
    "__support_xen_hana", "__support_kvm_infiniband", "architecture", "flavor_id",
)
SORT_KEYS = ("created_at", "name", "container_format", "disk_format", "status", "id", "size")
TIME_FILTER = re.compile(r"(gt|gte|lt|lte|eq|neq):(.+)")
TIME_OPS = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _time_conditions(query: Mapping[str, str]) -> list[tuple[str, str, float]]:
    """``created_at=lt:2018-10-28T10:00:00Z`` and the like, checked before any image is looked at."""
    conditions = []
    for field in ("created_at", "updated_at"):
        if field not in query:
            continue
        match = TIME_FILTER.fullmatch(query[field])
        if match is None:
            raise ImsError("IMG.0001")
        try:
            conditions.append((field, match.group(1), parse_image_time(match.group(2))))
        except ValueError as exc:
            raise ImsError("IMG.0001") from exc
    return conditions


def _matches(image: dict[str, Any], query: Mapping[str, str], times: list[tuple[str, str, float]]) -> bool:
    for name in EQUALITY_FILTERS:
        if name in query and (name not in image or _text(image[name]) != query[name]):
            return False
    if "__whole_image" in query:
        # A missing flag means "not full-ECS" (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0602.html).
        whole = _text(image.get("__whole_image", "false")).lower()
        if whole != query["__whole_image"].lower():
            return False
    project = query.get("enterprise_project_id")
    if project not in (None, "all_granted_eps") and image.get("enterprise_project_id") != project:
        return False
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


def list_images(project: Project, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """Filtered page: sorted (default ``created_at`` desc), starting after ``marker``, at most ``limit``."""
    limit = _limit(query)
    times = _time_conditions(query)
    sort_key = query.get("sort_key", "created_at")
    sort_key = sort_key if sort_key in SORT_KEYS else "created_at"
    descending = query.get("sort_dir", "desc") != "asc"
    ordered = sorted(
        project.images.values(),
        key=lambda image: (_text(image.get(sort_key)) if sort_key != "size" else image.get("size", 0),
                           project.image_order[image["id"]]),
        reverse=descending,
    )
    marker = query.get("marker")
    if marker is not None:
        ids = [image["id"] for image in ordered]
        # An unknown marker yields an empty page (a simulator choice; Glance would answer 400).
        ordered = ordered[ids.index(marker) + 1:] if marker in ids else []
    return [image for image in ordered if _matches(image, query, times)][:limit]
