"""The simulator's settings: fixed ones from the command line, fault knobs that tests may change at runtime."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_PROJECT_ID = "ac234de25c6741d2b1273da49eea1b9e"
# The agency every simulator has, allowed to copy into every region (docs/simulator.md, "Regions and agencies").
DEFAULT_AGENCY = "ims_admin_agency"


@dataclass
class FaultKnobs:
    """What ``POST /_sim/faults`` may change; rates are probabilities, times are seconds."""

    fail_rate: float = 0.0
    error_rate: float = 0.0
    # The APIs (by their /_sim/stats names, e.g. "tags_action") that error_rate applies to; empty: every API. So a
    # test can make one call fail (a copy's tagging) while the copies themselves go through.
    error_apis: tuple[str, ...] = ()
    throttle_rate: float = 0.0
    latency: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 120.0
    request_rate: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` all or nothing; raise ``ValueError`` naming the first bad one."""
        known = {f.name for f in fields(self)}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; knobs are {sorted(known)}")
            if name == "error_apis":
                if not isinstance(value, list) or not all(isinstance(api, str) and api for api in value):
                    raise ValueError("error_apis must be a list of API names (as /_sim/stats names them)")
                checked[name] = tuple(value)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
            if name.endswith("_rate") and name != "request_rate" and value > 1:
                raise ValueError(f"{name} is a probability, at most 1")
            checked[name] = float(value)
        for name, value in checked.items():
            setattr(self, name, value)

    def errs_on(self, api: str) -> bool:
        """Whether an injected 5xx (``error_rate``) may hit a request to ``api``."""
        return not self.error_apis or api in self.error_apis

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RegionSpec:
    """A region served besides the first: its name, its projects (the first is its default) and its port."""

    name: str
    project_ids: tuple[str, ...]
    port: int = 0  # 0: any free port, shown at /_sim/regions


@dataclass(frozen=True)
class AgencySpec:
    """An IAM agency for cross-region copies: the destination regions where it holds the IMS copy policy
    (``IMS CrossCopyAgencyPolicy``) and the CBR one needed for full-ECS images; ``None`` means every region."""

    name: str
    regions: frozenset[str] | None = None
    cbr_regions: frozenset[str] | None = None

    def allows(self, region: str, *, full_ecs: bool) -> bool:
        granted = self.cbr_regions if full_ecs else self.regions
        return granted is None or region in granted


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8780
    region: str = "cn-north-4"  # the first region, served on ``port``
    project_ids: tuple[str, ...] = (DEFAULT_PROJECT_ID,)  # the first region's projects
    extra_regions: tuple[RegionSpec, ...] = ()
    agencies: tuple[AgencySpec, ...] = ()  # besides DEFAULT_AGENCY, which a spec of that name replaces
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
    cross_region_job_limit: int = 5
    shared_job_pool: bool = False  # cross-region copies also take in-region slots (and the reverse)
    cross_region_max_gb: float = 0.0  # 0: Huawei's per-region limit (128 GB, 300 GB in four regions)
    member_job_seconds: float = 1.0
    # A copy of a shared image refuses a cmk_id (IMG.0197), as Huawei's Chinese user guide has it; by default the
    # member re-keys it with its own key (ims-contract.md §12, OTC's user guide).
    unencrypted_shared_copies: bool = False
    new_images_every: float = 0.0  # seconds between scheduled batches of new images in the home project; 0: none
    new_images_count: int = 1  # images per batch
    seed: int = 0
    token_ttl: float = 86_400.0
    temporary_credentials_seconds: float = 86_400.0  # lifetime of the metadata service's temporary AK/SK
    lockout_seconds: float = 300.0
    log_level: str = "info"
    knobs: FaultKnobs = field(default_factory=FaultKnobs)

    @property
    def regions(self) -> tuple[RegionSpec, ...]:
        """Every region served, the first one first."""
        return (RegionSpec(self.region, self.project_ids, self.port), *self.extra_regions)

    def agency_specs(self) -> tuple[AgencySpec, ...]:
        named = {spec.name for spec in self.agencies}
        default = () if DEFAULT_AGENCY in named else (AgencySpec(DEFAULT_AGENCY),)
        return (*default, *self.agencies)
