"""Call counts by endpoint and HTTP status, overall, per project and per region, for ``/_sim/stats``."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._by_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
        self._by_project: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self._by_region: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))

    def record(self, endpoint: str, status: int, project_id: str | None, region: str | None = None) -> None:
        self._by_endpoint[endpoint][str(status)] += 1
        if project_id is not None:
            self._by_project[project_id][endpoint][str(status)] += 1
        if region is not None:
            self._by_region[region][endpoint][str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": sum(sum(c.values()) for c in self._by_endpoint.values()),
            "by_endpoint": {name: dict(counts) for name, counts in sorted(self._by_endpoint.items())},
            "by_project": _nested(self._by_project),
            "by_region": _nested(self._by_region),
        }


def _nested(table: dict[str, dict[str, Counter[str]]]) -> dict[str, Any]:
    return {
        key: {name: dict(counts) for name, counts in sorted(endpoints.items())}
        for key, endpoints in sorted(table.items())
    }
