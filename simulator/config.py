"""The simulator's settings: fixed ones from the command line, fault knobs that tests may change at runtime."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_PROJECT_ID = "ac234de25c6741d2b1273da49eea1b9e"


@dataclass
class FaultKnobs:
    """What ``POST /_sim/faults`` may change; rates are probabilities, times are seconds."""

    fail_rate: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    latency: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 120.0
    request_rate: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` all or nothing; raise ``ValueError`` naming the first bad one."""
        known = {f.name for f in fields(self)}
        checked: dict[str, float] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; knobs are {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
            if name.endswith("_rate") and name != "request_rate" and value > 1:
                raise ValueError(f"{name} is a probability, at most 1")
            checked[name] = float(value)
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8780
    region: str = "cn-north-4"
    project_ids: tuple[str, ...] = (DEFAULT_PROJECT_ID,)
    access_key: str = "AKEXAMPLE"
    secret_key: str = "SKEXAMPLE"
    iam_user: str = "demo-user"
    iam_password: str = "demo-password"
    iam_domain: str = "demo-domain"
    catalog: Path | None = None
    copy_seconds: float = 5.0
    copy_seconds_per_gb: float = 0.0
    job_limit: int = 5
    image_quota: int = 50
    seed: int = 0
    token_ttl: float = 86_400.0
    lockout_seconds: float = 300.0
    log_level: str = "info"
    knobs: FaultKnobs = field(default_factory=FaultKnobs)
