"""Generate a large catalogue with a chosen mix of image kinds, reproducibly from a seed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from simulator.catalog.kinds import DEFAULT_KEYS, KINDS


def parse_mix(text: str) -> dict[str, float]:
    """``ordinary=0.9,iso=0.02`` into weights; unknown kinds and negative or all-zero weights are errors."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in KINDS:
            raise ValueError(f"bad mix item {part!r}; kinds are {', '.join(KINDS)}")
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


def generate(total: int, mix: dict[str, float], seed: int = 0) -> dict[str, Any]:
    """A catalogue whose ``default`` entry holds ``total`` images in the given mix, shuffled by ``seed``."""
    entries = [(f"{kind.replace('_', '-')}-{i:05d}", kind) for kind, count in allocate(total, mix).items()
               for i in range(count)]
    random.Random(seed).shuffle(entries)
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    images = [
        {**KINDS[kind](name), "created_at": (start + timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for index, (name, kind) in enumerate(entries)
    ]
    return {"default": {"images": images, "keys": DEFAULT_KEYS}}
