"""Generate a large catalogue with a chosen mix of image kinds, reproducibly from a seed.

Beyond the kinds, a catalogue can vary what a selector filters on: the keys encrypted images use, the OS
platforms, tags, and creation dates over a range. Each of these draws from its own seeded stream, so turning one
on changes neither the names, kinds and order nor the other attributes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from simulator.catalog.kinds import DEFAULT_KEYS, KINDS

# __platform values IMS documents, with the __os_type and an __os_version each gets.
PLATFORMS: dict[str, tuple[str, str]] = {
    "Ubuntu": ("Linux", "Ubuntu 22.04 server 64bit"),
    "CentOS": ("Linux", "CentOS 7.9 64bit"),
    "EulerOS": ("Linux", "EulerOS 2.5 64bit"),
    "Debian": ("Linux", "Debian 12.0 64bit"),
    "SUSE": ("Linux", "SUSE Linux Enterprise Server 15 SP4 64bit"),
    "Red Hat": ("Linux", "Red Hat Linux Enterprise 8.4 64bit"),
    "Oracle Linux": ("Linux", "Oracle Linux Server release 8.4 64bit"),
    "Fedora": ("Linux", "Fedora 36 64bit"),
    "OpenSUSE": ("Linux", "OpenSUSE 15.4 64bit"),
    "CoreOS": ("Linux", "CoreOS 2023.4.0 64bit"),
    "Windows": ("Windows", "Windows Server 2019 Standard 64bit"),
    "Other": ("Other", "Other Linux(64 bit)"),
}
# The tags a tagged image draws from: one to three of these keys, each with one of its values.
TAG_VOCABULARY: dict[str, tuple[str, ...]] = {
    "team": ("web", "api", "data"),
    "env": ("prod", "test", "dev"),
    "cost-center": ("cc-101", "cc-202"),
}
FIRST_CREATED = datetime(2023, 1, 1, tzinfo=timezone.utc)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_mix(text: str, known: Sequence[str] = tuple(KINDS)) -> dict[str, float]:
    """``ordinary=0.9,iso=0.02`` into weights; unknown names and negative or all-zero weights are errors."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.rpartition("=")
        kind = kind.strip()
        if not sep or kind not in known:
            raise ValueError(f"bad mix item {part!r}; choose from {', '.join(known)}")
        mix[kind] = float(weight)
        if mix[kind] < 0:
            raise ValueError(f"negative weight for {kind}")
    if sum(mix.values()) <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return mix


def allocate(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Exact counts per kind summing to ``total`` (largest remainder), so a mix is met, not approximated."""
    weight_sum = sum(mix.values())
    shares = {kind: total * weight / weight_sum for kind, weight in mix.items()}
    counts = {kind: int(share) for kind, share in shares.items()}
    by_remainder = sorted(mix, key=lambda kind: (shares[kind] - counts[kind], kind), reverse=True)
    for kind in by_remainder[: total - sum(counts.values())]:
        counts[kind] += 1
    return counts


def _spread(total: int, weights: dict[str, float], rng: random.Random) -> list[str]:
    """``total`` values in the exact proportions of ``weights``, in a seeded order."""
    values = [value for value, count in allocate(total, weights).items() for _ in range(count)]
    rng.shuffle(values)
    return values


def _tags(rng: random.Random) -> list[str]:
    keys = rng.sample(sorted(TAG_VOCABULARY), rng.randint(1, len(TAG_VOCABULARY)))
    return [f"{key}={rng.choice(TAG_VOCABULARY[key])}" for key in sorted(keys)]


def generate(
    total: int,
    mix: dict[str, float],
    seed: int = 0,
    *,
    keys: Sequence[str] = ("old-key",),
    platforms: dict[str, float] | None = None,
    tagged: float = 0.0,
    created: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """A catalogue whose ``default`` entry holds ``total`` images in the given mix, shuffled by ``seed``.

    ``keys``: the aliases encrypted images are spread over (aliases not in the default key set are added as
    enabled keys). ``platforms``: weights of ``__platform`` values (else each kind's own). ``tagged``: the share
    of images given one to three tags. ``created``: spread ``created_at`` over [start, end) (else one minute
    apart from 2023-01-01).
    """
    entries = [
        (f"{kind.replace('_', '-')}-{i:05d}", kind)
        for kind, count in allocate(total, mix).items()
        for i in range(count)
    ]
    random.Random(seed).shuffle(entries)
    images = [
        {**KINDS[kind](name), "created_at": (FIRST_CREATED + timedelta(minutes=index)).strftime(TIME_FORMAT)}
        for index, (name, kind) in enumerate(entries)
    ]
    encrypted = [image for image in images if "encrypted_with" in image]
    aliases = _spread(len(encrypted), dict.fromkeys(keys, 1.0), random.Random(f"{seed}/keys"))
    for image, alias in zip(encrypted, aliases, strict=True):
        image["encrypted_with"] = alias
    if platforms:
        chosen = _spread(total, platforms, random.Random(f"{seed}/platforms"))
        for image, platform in zip(images, chosen, strict=True):
            os_type, version = PLATFORMS[platform]
            image.update({"__platform": platform, "__os_type": os_type, "__os_version": version})
    tag_rng = random.Random(f"{seed}/tags")
    for image in images:
        if tag_rng.random() < tagged:
            image["tags"] = _tags(tag_rng)
    if created is not None:
        start, end = created
        span = (end - start).total_seconds()
        date_rng = random.Random(f"{seed}/dates")
        for image in images:
            image["created_at"] = (start + timedelta(seconds=int(date_rng.random() * span))).strftime(TIME_FORMAT)
    known = {key["key_alias"] for key in DEFAULT_KEYS}
    extra = [
        {"key_alias": alias, "key_state": "2", "creation_date": "1704412800000"}
        for alias in dict.fromkeys(keys)
        if alias not in known
    ]
    return {"default": {"images": images, "keys": [*DEFAULT_KEYS, *extra]}}
