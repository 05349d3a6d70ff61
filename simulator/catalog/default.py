"""The built-in catalogue every project gets when no ``--catalog`` file is given (see docs/simulator.md)."""

from __future__ import annotations

from typing import Any

from simulator.catalog import kinds
from simulator.catalog.records import GIB


def _at(day: int) -> dict[str, str]:
    # Fixed, distinct creation times keep the default sort (created_at desc) stable.
    return {"created_at": f"2024-03-{day:02d}T08:00:00Z"}


DEFAULT_IMAGES: list[dict[str, Any]] = [
    {**kinds.ordinary("ubuntu-22.04-web"), **_at(1)},
    {**kinds.ordinary("centos-7-app"), "__os_version": "CentOS 7.9 64bit", "__platform": "CentOS", **_at(2)},
    {
        **kinds.ordinary("debian-12-base"),
        "__os_version": "Debian 12.0 64bit",
        "__platform": "Debian",
        "__image_size": str(1 * GIB),
        **_at(3),
    },
    {**kinds.encrypted("euleros-encrypted"), **_at(4)},
    {**kinds.legacy("centos-6-legacy"), **_at(5)},
    {**kinds.full_ecs("ecs-full-backup"), **_at(6)},
    {**kinds.iso("install-iso"), **_at(7)},
    {**kinds.oversized("bigdata-200g"), **_at(8)},
    {**kinds.ordinary("edge-128g"), "__image_size": str(128 * GIB), "min_disk": 160, **_at(9)},
    {**kinds.not_active("uploading-image"), **_at(10)},
]

DEFAULT_CATALOG: dict[str, Any] = {"images": DEFAULT_IMAGES, "keys": kinds.DEFAULT_KEYS}
