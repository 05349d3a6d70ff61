"""Read a catalogue (JSON file or the built-in one) and build each project's image and key records.

File format (docs/simulator.md): ``{"default": ENTRY, "projects": {"<project_id>": ENTRY}}`` with
``ENTRY = {"images": [...], "keys": [...]}``. A project takes its own entry, else ``default``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.catalog.default import DEFAULT_CATALOG
from simulator.catalog.kinds import DEFAULT_KEYS
from simulator.catalog.records import build_image, build_key

KEY_STATES = {"1", "2", "3", "4", "5"}


class CatalogError(ValueError):
    """The catalogue file is unreadable or inconsistent; the message names the place."""


@dataclass
class ProjectCatalog:
    images: list[dict[str, Any]]
    keys: list[dict[str, Any]]


def read_catalog_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read catalogue {path}: {exc}") from exc
    if not isinstance(data, dict) or not set(data) <= {"default", "projects"}:
        raise CatalogError(f"{path}: the top level must be an object with 'default' and/or 'projects'")
    if not isinstance(data.get("projects", {}), dict):
        raise CatalogError(f"{path}: 'projects' must map project IDs to entries")
    return data


def load_catalog(path: Path | None) -> dict[str, Any]:
    """The catalogue source: the file's content, or the built-in catalogue as every project's default."""
    return read_catalog_file(path) if path is not None else {"default": DEFAULT_CATALOG}


def project_catalog(source: dict[str, Any], project_id: str, region: str, domain_id: str) -> ProjectCatalog:
    entry = source.get("projects", {}).get(project_id, source.get("default", {}))
    where = f"project {project_id}"
    if not isinstance(entry, dict) or not set(entry) <= {"images", "keys"}:
        raise CatalogError(f"{where}: an entry is an object with 'images' and/or 'keys'")
    keys = _keys(entry.get("keys", []), project_id, region, domain_id, where)
    key_ids = {key["key_alias"]: key["key_id"] for key in keys}
    return ProjectCatalog(_images(entry.get("images", []), project_id, key_ids, where), keys)


def _keys(entries: Any, project_id: str, region: str, domain_id: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: 'keys' must be a list")
    aliases = [e.get("key_alias") if isinstance(e, dict) else None for e in entries]
    for index, alias in enumerate(aliases):
        if not isinstance(alias, str) or not alias:
            raise CatalogError(f"{where}: keys[{index}] needs a 'key_alias' string")
        if str(entries[index].get("key_state", "2")) not in KEY_STATES:
            raise CatalogError(f"{where}: key {alias!r} has a key_state outside 1..5")
    if len(set(aliases)) != len(aliases):
        raise CatalogError(f"{where}: duplicate key aliases")
    # Every project has the IMS default key, listed or not
    # (https://support.huaweicloud.com/intl/en-us/dew_faq/dew_01_0168.html).
    if "ims/default" not in aliases:
        entries = [DEFAULT_KEYS[0], *entries]
    return [build_key(e, project_id, domain_id, region) for e in entries]


def _images(entries: Any, project_id: str, key_ids: dict[str, str], where: str) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: 'images' must be a list")
    records = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise CatalogError(f"{where}: images[{index}] needs a 'name' string")
        alias = entry.get("encrypted_with")
        if alias is not None and alias not in key_ids:
            raise CatalogError(f"{where}: image {entry['name']!r} is encrypted_with unknown key {alias!r}")
        try:
            records.append(build_image(entry, project_id, key_ids))
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"{where}: image {entry['name']!r}: {exc}") from exc
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise CatalogError(f"{where}: duplicate image IDs (or names)")
    return records
