"""The kinds of image a catalogue mixes, each exercising one copy rule, as catalogue entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.catalog.records import GIB

Entry = dict[str, Any]

# The key set every project gets, with their roles in the default catalogue.
DEFAULT_KEYS: list[Entry] = [
    {
        "key_alias": "ims/default",
        "default_key_flag": "1",
        "key_state": "2",
        "creation_date": "1704067200000",
        "key_description": "Default master key for IMS",
    },
    {"key_alias": "app-key", "key_state": "2", "creation_date": "1704153600000"},
    {
        "key_alias": "old-key",
        "key_state": "2",
        "creation_date": "1672531200000",
        "key_description": "Encrypts euleros-encrypted; re-key away from it",
    },
    {"key_alias": "disabled-key", "key_state": "3", "creation_date": "1704240000000"},
    {"key_alias": "retiring-key", "key_state": "4", "creation_date": "1704326400000"},
]


def ordinary(name: str) -> Entry:
    return {"name": name}


def encrypted(name: str) -> Entry:
    return {"name": name, "encrypted_with": "old-key", "__os_version": "EulerOS 2.5 64bit", "__platform": "EulerOS"}


def legacy(name: str) -> Entry:
    """No Fast Create yet: the reason to replicate it."""
    return {"name": name, "__lazyloading": "false", "__os_version": "CentOS 6.10 64bit", "__platform": "CentOS"}


def full_ecs(name: str) -> Entry:
    backup = "b7c1b6a8-5c1e-4e5d-9d62-0c3f5f7e9a11"
    return {
        "name": name,
        "__whole_image": "true",
        "__data_origin": f"server_backup,{backup}",
        "__backup_id": backup,
        "__image_size": "0",
    }


def iso(name: str) -> Entry:
    return {
        "name": name,
        "disk_format": "iso",
        "virtual_env_type": "IsoImage",
        "__image_size": str(4 * GIB),
        "__lazyloading": "false",
        "__data_origin": f"file,obs://images/{name}.iso",
        "__root_origin": "file",
    }


def oversized(name: str) -> Entry:
    return {"name": name, "__image_size": str(200 * GIB), "min_disk": 256}


def huge(name: str) -> Entry:
    """Over every copy limit, the 300 GB cross-region one of the large regions included."""
    return {"name": name, "__image_size": str(400 * GIB), "min_disk": 512}


def not_active(name: str) -> Entry:
    return {"name": name, "status": "saving"}


KINDS: dict[str, Callable[[str], Entry]] = {
    "ordinary": ordinary,
    "encrypted": encrypted,
    "legacy": legacy,
    "full_ecs": full_ecs,
    "iso": iso,
    "oversized": oversized,
    "huge": huge,
    "not_active": not_active,
}
