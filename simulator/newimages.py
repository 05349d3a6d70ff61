"""New private images, as a project's users would make them: on demand (``POST /_sim/images``) and on a schedule
(``--new-images-every``), so a standing replication policy has something to catch up with.

They are shaped like the catalogue's ordinary images and named to continue a lineage (``golden-web-v7`` makes
``golden-web-v8``), counted in the quota like any private image, and drawn from seeded streams of their own.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from simulator.catalog.records import build_image
from simulator.errors import ImsError
from simulator.randomness import SeededStreams, random_uuid
from simulator.replication import check_image_name
from simulator.state import Project
from simulator.timefmt import image_time

NUMBER = "{n}"
# A lineage is a family of names that differ by a trailing version: "golden-web-v7", "golden-web-v8".
LINEAGE = re.compile(r"(?P<stem>.+-v)\d+")
# Fresh lineages are "<flavour>-<role>-v1".
FLAVOURS = ("golden", "base", "hardened", "patched")
ROLES = ("web", "api", "db", "worker", "cache", "batch")
NEW_LINEAGE_CHANCE = 0.2
# A new version keeps its predecessor's OS and size, as a rebuilt image would.
INHERITED = ("__platform", "__os_type", "__os_version", "__os_bit", "__image_size", "min_disk")


class NoRoom(ValueError):
    """More images asked for than the project's quota leaves room for (a conflict, not a bad request)."""


@dataclass(frozen=True)
class ImageSpec:
    """What ``POST /_sim/images`` may choose: a name template (``{n}`` is the next number of its lineage; else the
    name as given), encryption with one of the project's enabled keys, and tags."""

    template: str | None = None
    encrypted: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def room(project: Project) -> int:
    return max(0, project.image_quota - project.quota_used())


def _enabled_keys(project: Project) -> dict[str, str]:
    """The project's keys that can encrypt, alias -> ID."""
    return {key["key_alias"]: key["key_id"] for key in project.keys.values() if key["key_state"] == "2"}


def _pattern(template: str) -> re.Pattern[str]:
    before, _, after = template.partition(NUMBER)
    return re.compile(re.escape(before) + r"(\d+)" + re.escape(after))


def _latest(project: Project, template: str) -> tuple[int, dict[str, Any] | None]:
    """The highest number a name of ``template`` has in ``project`` (0 if none), and that image."""
    pattern = _pattern(template)
    best: tuple[int, dict[str, Any] | None] = (0, None)
    for image in project.images.values():
        match = pattern.fullmatch(image["name"])
        if match and int(match[1]) >= best[0]:
            best = (int(match[1]), image)
    return best


def _lineage_template(project: Project, rng: random.Random) -> str:
    """Continue one of the project's lineages, or now and then (or when it has none) start one."""
    stems = sorted({m["stem"] for image in project.images.values() if (m := LINEAGE.fullmatch(image["name"]))})
    if stems and rng.random() >= NEW_LINEAGE_CHANCE:
        return rng.choice(stems) + NUMBER
    return f"{rng.choice(FLAVOURS)}-{rng.choice(ROLES)}-v{NUMBER}"


def planned_names(project: Project, count: int, template: str) -> list[str]:
    """The names ``count`` new images of ``template`` get, numbered on from the project's latest."""
    if NUMBER not in template:
        return [template] * count
    latest, _ = _latest(project, template)
    return [template.replace(NUMBER, str(latest + k)) for k in range(1, count + 1)]


def _check_names(names: list[str]) -> None:
    """Each name as a copy's would be checked (ValueError naming the rule)."""
    for name in names:
        try:
            check_image_name(name)
        except ImsError as exc:
            raise ValueError(f"name: {name!r}: {exc} ({exc.code})") from exc


class NewImages:
    def __init__(self, streams: SeededStreams, every: float = 0.0, count: int = 1, start: float = 0.0) -> None:
        self._rngs = {"requested": streams.requested_images, "scheduled": streams.scheduled_images}
        # The schedule: ``count`` images every ``every`` seconds after ``start`` (0: none); batches made so far.
        self.every, self.count, self._start = every, count, start
        self._batches = 0
        # Images added on request and on schedule, and scheduled ones left out because the quota was full.
        self.counts: Counter[str] = Counter(requested=0, scheduled=0, skipped_at_quota=0)

    def request(self, project: Project, count: int, spec: ImageSpec, now: float) -> list[dict[str, Any]]:
        """Add ``count`` images now, all or none (``NoRoom`` beyond the quota)."""
        if spec.template is not None:
            _check_names(planned_names(project, count, spec.template))
        if spec.encrypted and not _enabled_keys(project):
            raise ValueError(f"encrypted: project {project.id} has no enabled key")
        if count > room(project):
            raise NoRoom(f"the quota of project {project.id} leaves room for {room(project)} image(s)")
        made = [self._add(project, spec, now, "requested") for _ in range(count)]
        self.counts["requested"] += count
        return made

    def tick(self, project: Project, now: float) -> None:
        """Add the scheduled batches due by ``now``, each made at its own instant, as far as the quota allows (the
        rest are skipped, as a user's upload would be refused)."""
        while self.every > 0 and self._due(self._batches + 1) <= now:
            fits = min(self.count, room(project))
            if fits == 0:
                # A full quota stays full within a tick: skip every batch due by now at once.
                skipped = max(1, math.floor((now - self._start) / self.every) - self._batches)
                self.counts["skipped_at_quota"] += skipped * self.count
                self._batches += skipped
                return
            at = self._due(self._batches + 1)
            for _ in range(fits):
                self._add(project, ImageSpec(), at, "scheduled")
            self.counts["scheduled"] += fits
            self.counts["skipped_at_quota"] += self.count - fits
            self._batches += 1

    def _due(self, batch: int) -> float:
        # From the start, not by adding up intervals: no drift over a long run.
        return self._start + batch * self.every

    def _add(self, project: Project, spec: ImageSpec, at: float, origin: str) -> dict[str, Any]:
        rng = self._rngs[origin]
        template = spec.template or _lineage_template(project, rng)
        (name,) = planned_names(project, 1, template)
        _, predecessor = _latest(project, template) if NUMBER in template else (0, None)
        entry: dict[str, Any] = {
            **{key: predecessor[key] for key in INHERITED if predecessor and key in predecessor},
            "id": random_uuid(rng),
            "name": name,
            "created_at": image_time(at),
            "tags": dict(spec.tags),
        }
        key_ids = _enabled_keys(project)
        if spec.encrypted:
            entry["encrypted_with"] = rng.choice(sorted(key_ids))
        record = build_image(entry, project.id, key_ids)
        project.add_image(record)
        return record
