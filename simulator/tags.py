"""Image tags: batch create/delete and list (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0617.html):
key/value pairs, shown in the image record's ``tags`` as ``key=value``, the form the list filter takes
(``tag=key=value``, https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0602.html)."""

from __future__ import annotations

from typing import Any

from simulator.errors import ImsError
from simulator.replication import json_object
from simulator.state import Project, SimState

MAX_TAGS = 10
KEY_MAX = 36
VALUE_MAX = 43
# Deleting checks lengths only, and looser ones.
DELETE_KEY_MAX = 127
DELETE_VALUE_MAX = 255
ACTIONS = ("create", "delete")


def _owned(state: SimState, project: Project, image_id: str) -> dict[str, Any]:
    image = project.images.get(image_id)
    if image is None:
        if state.membership(project, image_id):
            raise ImsError("IMG.0047")  # shared with this project: only the owner tags it
        raise ImsError("IMG.0144", status=404)
    return image


def _pairs(tags: Any, *, creating: bool) -> list[tuple[str, str | None]]:
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise ImsError("IMG.0001")
    pairs: list[tuple[str, str | None]] = []
    key_max, value_max = (KEY_MAX, VALUE_MAX) if creating else (DELETE_KEY_MAX, DELETE_VALUE_MAX)
    for tag in tags:
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or not key.strip() or len(key) > key_max:
            raise ImsError("IMG.0115")
        value_ok = isinstance(value, str) and len(value) <= value_max
        if not value_ok and (creating or value is not None):
            raise ImsError("IMG.0115")
        pairs.append((key, value))
    if len({key for key, _ in pairs}) != len(pairs):
        raise ImsError("IMG.0115")  # one key twice in a request
    return pairs


def tag_action(state: SimState, project: Project, image_id: str, raw: bytes) -> None:
    """Create (or overwrite) or delete tags, all or nothing; idempotent both ways."""
    image = _owned(state, project, image_id)
    body = json_object(raw)
    action = body.get("action")
    if action not in ACTIONS:
        raise ImsError("IMG.0001")
    pairs = _pairs(body.get("tags"), creating=action == "create")
    current = project.tags.get(image_id, {})
    if action == "create":
        merged = {**current, **{key: value or "" for key, value in pairs}}
        if len(merged) > MAX_TAGS:
            raise ImsError("IMG.0116")
    else:
        # A tag named with a value goes only if that is its value; one named by key alone goes whatever it is.
        gone = {key for key, value in pairs if key in current and value in (None, current[key])}
        merged = {key: value for key, value in current.items() if key not in gone}
    if merged:
        project.tags[image_id] = merged
    else:
        project.tags.pop(image_id, None)
    image["tags"] = [f"{key}={value}" for key, value in merged.items()]


def list_tags(state: SimState, project: Project, image_id: str) -> dict[str, Any]:
    _owned(state, project, image_id)
    return {"tags": [{"key": key, "value": value} for key, value in project.tags.get(image_id, {}).items()]}
