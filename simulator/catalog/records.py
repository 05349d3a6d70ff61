"""Turn catalogue entries (a few fields) into full IMS image records and KMS key records.

IDs are deterministic (uuid5 of project ID and name), so tests and the demo find images by name.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "ims-replicator/simulator")
GIB = 1 << 30

# An ordinary Linux system-disk image, in the field names and types of IMS's image list
# (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0602.html).
IMAGE_DEFAULTS: dict[str, Any] = {
    "schema": "/v2/schemas/image",
    "status": "active",
    "visibility": "private",
    "__imagetype": "private",
    "__isregistered": "true",
    "protected": False,
    "container_format": "bare",
    "disk_format": "zvhd2",
    "virtual_env_type": "FusionCompute",
    "__image_source_type": "uds",
    "min_disk": 40,
    "min_ram": 0,
    "max_ram": "",
    "size": 0,
    "virtual_size": 0,
    "checksum": "d41d8cd98f00b204e9800998ecf8427e",
    "__image_size": str(2 * GIB + 256 * (1 << 20)),
    "__os_type": "Linux",
    "__os_bit": "64",
    "__os_version": "Ubuntu 22.04 server 64bit",
    "__platform": "Ubuntu",
    "__support_kvm": "true",
    "__lazyloading": "true",
    "__originalimagename": "",
    "__backup_id": "",
    "__productcode": "",
    "__description": "",
    "hw_firmware_type": "bios",
    "hw_vif_multiqueue_enabled": "true",
    "enterprise_project_id": "0",
    "tags": [],
    "created_at": "2024-01-01T00:00:00Z",
}

# Fields stored as strings even when a catalogue file gives numbers.
STRING_FIELDS = ("__image_size", "max_ram", "__os_bit")
INT_FIELDS = ("min_disk", "min_ram", "size")


def image_id_for(project_id: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{project_id}:image:{name}"))


def key_id_for(project_id: str, alias: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{project_id}:key:{alias}"))


def default_project_id_for(region: str) -> str:
    """The default project of a region served besides the first, when none is given (32 hex, as IAM's)."""
    return uuid.uuid5(NAMESPACE, f"project:{region}").hex


def domain_id_for(domain_name: str) -> str:
    return uuid.uuid5(NAMESPACE, f"domain:{domain_name}").hex


# Catalogue tags follow the tags API's limits (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0617.html).
MAX_TAGS, TAG_KEY_MAX, TAG_VALUE_MAX = 10, 36, 43


def tag_pairs(tags: Any) -> dict[str, str]:
    """Catalogue tags, ``{"key": "value"}`` or ``["key=value", ...]``, as key -> value; ``ValueError`` if bad."""
    if isinstance(tags, dict):
        pairs = list(tags.items())
    elif isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        pairs = [tuple(t.split("=", 1)) if "=" in t else (t, "") for t in tags]
    else:
        raise ValueError('tags are {"key": "value"} or ["key=value"]')
    result = dict(pairs)
    if len(result) != len(pairs) or len(result) > MAX_TAGS:
        raise ValueError(f"tags: at most {MAX_TAGS}, each key once")
    for key, value in result.items():
        if not isinstance(key, str) or not key.strip() or len(key) > TAG_KEY_MAX:
            raise ValueError(f"tag key {key!r}: 1 to {TAG_KEY_MAX} characters, not blank")
        if not isinstance(value, str) or len(value) > TAG_VALUE_MAX:
            raise ValueError(f"tag {key!r}: the value is a string of at most {TAG_VALUE_MAX} characters")
    return result


def build_image(entry: dict[str, Any], project_id: str, key_ids: dict[str, str]) -> dict[str, Any]:
    """A full record from a catalogue entry; ``encrypted_with`` names a key alias of the same project."""
    entry = copy.deepcopy(entry)
    name = entry.pop("name")
    alias = entry.pop("encrypted_with", None)
    image_id = entry.pop("id", None) or image_id_for(project_id, name)
    record = {"id": image_id, "name": name, **copy.deepcopy(IMAGE_DEFAULTS), **entry}
    record["owner"] = project_id
    record["file"] = f"/v2/images/{image_id}/file"
    record["self"] = f"/v2/images/{image_id}"
    record.setdefault("__data_origin", f"instance,{uuid.uuid5(NAMESPACE, f'{image_id}:server')}")
    record.setdefault("updated_at", record["created_at"])
    if record["status"] == "active":
        record.setdefault("active_at", record["updated_at"])
    if alias is not None:
        record["__system__cmkid"] = key_ids[alias]
    # Tags show in the record as "key=value", the list filter's form (docs/simulator.md, Tags).
    record["tags"] = [f"{key}={value}" for key, value in tag_pairs(record["tags"]).items()]
    for field in STRING_FIELDS:
        record[field] = str(record[field])
    for field in INT_FIELDS:
        record[field] = int(record[field])
    return record


def build_key(entry: dict[str, Any], project_id: str, domain_id: str, region: str) -> dict[str, Any]:
    """A full KMS ``KeyDetails`` record from a catalogue entry
    (https://support.huaweicloud.com/intl/en-us/api-dew/ListKeys.html)."""
    alias = entry["key_alias"]
    state = str(entry.get("key_state", "2"))
    created = str(entry.get("creation_date", "1704067200000"))
    return {
        "key_id": entry.get("key_id") or key_id_for(project_id, alias),
        "domain_id": domain_id,
        "key_alias": alias,
        "realm": region,
        "key_spec": entry.get("key_spec", "AES_256"),
        "key_usage": "ENCRYPT_DECRYPT",
        "key_description": entry.get("key_description", ""),
        "creation_date": created,
        # Pending deletion keys carry the date; seven days after creation is as good as any.
        "scheduled_deletion_date": str(int(created) + 7 * 86_400_000) if state == "4" else "",
        "key_state": state,
        "default_key_flag": str(entry.get("default_key_flag", "0")),
        "key_type": "1",
        "expiration_time": "",
        "origin": "kms",
        "key_rotation_enabled": "false",
        "sys_enterprise_project_id": "0",
        "keystore_id": "0",
    }
