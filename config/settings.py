"""The one typed settings object of ims-replicator.

Every value comes from the environment (prefix ``IMSREP_``) or an optional ``.env`` file. Accounts are a mapping
keyed by a short name, so a multi-account set-up needs no JSON: ``IMSREP_ACCOUNTS__PROD__PROJECT_ID=...`` sets the
``project_id`` of the account ``prod`` (``IMSREP_ACCOUNTS`` may also hold the whole mapping as JSON).

Secrets (AK/SK, security tokens, IAM passwords, API tokens, the Flower password) are ``SecretStr``: they print as
``**********`` and are never written to Redis, task arguments or logs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "IMSREP_"
_WEAK_SECRETS = {"", "demo", "changeme", "changethis", "password", "admin", "secret", "token"}
# Matched with fullmatch (``$`` alone would also match before a trailing line feed); anchored for pydantic's pattern.
ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # also the API's rule for an item's account
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")
_ENDPOINT = re.compile(r"https?://[^\s/]+(:\d+)?/?")
# The ECS metadata service, where a server's agency hands out temporary AK/SK (docs/ims-api.md §8).
METADATA_ENDPOINT = "http://169.254.169.254"


class SettingsError(RuntimeError):
    """Raised at start-up when a setting is missing or invalid; the message names the variable."""


_PROJECT_ID = r"^[0-9a-f]{32}$"
_PROJECT_ID_SHAPE = re.compile(_PROJECT_ID)
ANY = "*"  # an allow-list entry that allows any (a guardrail's project or region, a principal's account)
# IAM agency names: letters, digits, '_', '-' and '.', at most 64 characters.
AGENCY_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _region_key(name: str) -> str:
    """A region ID from a settings key: ``CN_SOUTH_1`` (an environment variable cannot hold '-') is cn-south-1."""
    return name.strip().lower().replace("_", "-")


def _comma_list(v: object) -> object:
    """A list from the environment: comma-separated, blanks dropped (as ``IMSREP_API_TOKENS``)."""
    if isinstance(v, str):
        return [part.strip() for part in v.split(",") if part.strip()]
    return v


def _allow_list(values: list[str], shape: re.Pattern[str], what: str) -> list[str]:
    """A guardrail's allow-list: each entry shaped like ``what``, or ``*`` alone (any)."""
    if ANY in values:
        if len(values) > 1:
            raise ValueError(f"'{ANY}' allows any and must stand alone")
        return values
    for value in values:
        if not shape.fullmatch(value):
            raise ValueError(f"{value!r} must be {what}, or '{ANY}' alone for any")
    return values


def default_endpoint(service: str, region: str) -> str:
    """Huawei Cloud's public endpoint of a service in a region (docs/ims-api.md §1)."""
    return f"https://{service}.{region}.myhuaweicloud.com"


def _endpoint(v: str | None) -> str | None:
    if v is None:
        return v
    if not _ENDPOINT.fullmatch(v):
        raise ValueError("must be an http(s) URL with no path, e.g. https://ims.cn-north-4.myhuaweicloud.com")
    return v.rstrip("/")


class RegionSettings(BaseModel):
    """How an account reaches another region, a destination of its cross-region copies. Every field is optional:
    Huawei's IMS endpoint of that region and the account's own IAM endpoint are the defaults, and the project ID is
    looked up in IAM by name when not given (for the region's default project, whose name is the region ID)."""

    ims_endpoint: str | None = None
    iam_endpoint: str | None = None
    project_id: Annotated[str | None, Field(pattern=_PROJECT_ID)] = None

    @field_validator("ims_endpoint", "iam_endpoint")
    @classmethod
    def _endpoint_shape(cls, v: str | None) -> str | None:
        return _endpoint(v)


class CredentialsSource(str, Enum):
    """Where an account's credentials come from."""

    SETTINGS = "settings"  # access_key/secret_key (and security_token), or iam_user/iam_password/iam_domain
    METADATA = "metadata"  # the ECS metadata service: the temporary AK/SK of the server's agency, renewed in time


class AccountSettings(BaseModel):
    """One Huawei Cloud project that images are replicated in (and, across regions, copied out of).

    Credentials are checked for consistency here, not for presence: the API needs only an account's name and
    limits. The workers and ``imsrep up`` ask ``Settings.require_credentials``."""

    region: str = "cn-north-4"
    project_id: Annotated[str, Field(pattern=_PROJECT_ID)]
    ims_endpoint: str | None = None
    kms_endpoint: str | None = None
    iam_endpoint: str | None = None
    # AK/SK credentials (signed requests); a temporary AK/SK comes with its security token ...
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    security_token: SecretStr | None = None
    # ... or an IAM user whose password buys a project-scoped token ...
    iam_user: str | None = None
    iam_password: SecretStr | None = None
    iam_domain: str | None = None
    # ... or the metadata service of the ECS the worker runs on (an agency attached to the server).
    credentials_source: CredentialsSource = CredentialsSource.SETTINGS
    # The files the secrets above were read from (``…_FILE`` settings; ``SecretFiles`` records them, by field): the
    # worker reads AK/SK and security token there again when they change, so rotated credentials need no restart.
    secret_files: dict[str, Path] = Field(default_factory=dict)
    metadata_endpoint: str = METADATA_ENDPOINT
    slot_limit: Annotated[int, Field(ge=1, le=100)] = 5
    # Cross-region copies: IMS counts them apart from in-region ones, 5 at a time per tenant (IMG.0149).
    cross_region_slot_limit: Annotated[int, Field(ge=1, le=100)] = 5
    # The IAM agency a cross-region copy names when its item names none (it needs "IMS CrossCopyAgencyPolicy" in
    # the destination region), and the destination regions' endpoints and projects, by region ID.
    agency_name: Annotated[str | None, Field(pattern=AGENCY_NAME.pattern)] = None
    regions: dict[str, RegionSettings] = Field(default_factory=dict)
    request_rate: Annotated[float, Field(gt=0, le=10_000)] = 20.0
    request_burst: Annotated[int, Field(ge=1, le=10_000)] = 20
    # Guardrails (worker.domain.guardrails), checked at the API and again by the worker before the cloud call; from
    # the environment, lists are comma-separated. ``*`` alone allows any: an explicit escape hatch, never a default.
    # The projects copies may be shared with. Empty (the default) refuses sharing: handing an image to another
    # project is what leaks it, so nobody gets it without being named here.
    share_projects: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The regions copies may go to. None (the default): the regions listed under ``regions``, the destinations this
    # account was set up for; a region reached only through Huawei's default endpoints must be named here (or ``*``).
    copy_regions: Annotated[list[str] | None, NoDecode] = None
    # Whether an encrypted source may be copied unencrypted. True keeps deployments that decrypt working; a shared
    # deployment should set it false where encrypted images must stay encrypted.
    allow_decrypt: bool = True

    @field_validator("region")
    @classmethod
    def _region_shape(cls, v: str) -> str:
        if not _REGION.fullmatch(v):
            raise ValueError("must look like a Huawei Cloud region ID, e.g. cn-north-4")
        return v

    @field_validator("ims_endpoint", "kms_endpoint", "iam_endpoint", "metadata_endpoint")
    @classmethod
    def _endpoint_shape(cls, v: str | None) -> str | None:
        return _endpoint(v)

    @field_validator("share_projects", "copy_regions", mode="before")
    @classmethod
    def _split_list(cls, v: object) -> object:
        return _comma_list(v)

    @field_validator("share_projects")
    @classmethod
    def _share_projects_shape(cls, v: list[str]) -> list[str]:
        return _allow_list(v, _PROJECT_ID_SHAPE, "a project ID of 32 lowercase hex characters")

    @field_validator("copy_regions")
    @classmethod
    def _copy_regions_shape(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _allow_list(v, _REGION, "a region ID such as cn-south-1")

    @field_validator("regions")
    @classmethod
    def _region_names(cls, v: dict[str, RegionSettings]) -> dict[str, RegionSettings]:
        regions = {_region_key(name): region for name, region in v.items()}
        for name in regions:
            if not _REGION.fullmatch(name):
                raise ValueError(f"region {name!r} must look like a Huawei Cloud region ID, e.g. cn-south-1")
        return regions

    @model_validator(mode="after")
    def _defaults_and_credentials(self) -> AccountSettings:
        self.ims_endpoint = self.ims_endpoint or default_endpoint("ims", self.region)
        self.kms_endpoint = self.kms_endpoint or default_endpoint("kms", self.region)
        self.iam_endpoint = self.iam_endpoint or default_endpoint("iam", self.region)
        aksk = self.access_key is not None or self.secret_key is not None
        password = self.iam_user is not None or self.iam_password is not None
        if self.credentials_source is CredentialsSource.METADATA and (aksk or password or self.security_token):
            raise ValueError(
                "credentials_source=metadata takes the credentials from the metadata service: leave access_key, "
                "secret_key, security_token and iam_user/iam_password/iam_domain unset"
            )
        if aksk and password:
            raise ValueError("give either access_key/secret_key or iam_user/iam_password/iam_domain, not both")
        if aksk and not (self.access_key and self.secret_key):
            raise ValueError("access_key and secret_key must be given together")
        if self.security_token is not None and not aksk:
            raise ValueError("security_token goes with the temporary access_key and secret_key it was issued with")
        if password and not (self.iam_user and self.iam_password and self.iam_domain):
            raise ValueError("iam_user, iam_password and iam_domain must be given together")
        if unknown := sorted(name for name in self.secret_files if not _secret_field(AccountSettings, name)):
            raise ValueError(f"secret_files names what is not a secret of the account: {', '.join(unknown)}")
        return self

    @property
    def has_credentials(self) -> bool:
        """What "credentials configured" means (the checks above make each kind complete when present)."""
        return (
            self.credentials_source is CredentialsSource.METADATA
            or self.access_key is not None
            or self.iam_user is not None
        )

    def secret_values(self) -> list[str]:
        secrets = (self.access_key, self.secret_key, self.security_token, self.iam_password)
        return [s.get_secret_value() for s in secrets if s]

    def region_endpoints(self, region: str) -> tuple[str, str]:
        """The IMS and IAM endpoints this account uses in ``region``: a ``regions`` entry's, else Huawei's IMS
        endpoint of that region and the account's own IAM endpoint (IAM is global: it serves every region's
        projects)."""
        other = self.regions.get(region) or RegionSettings()
        own = region == self.region
        ims = other.ims_endpoint or (self.ims_endpoint if own else None) or default_endpoint("ims", region)
        return ims, other.iam_endpoint or self.iam_endpoint or default_endpoint("iam", region)

    def in_region(self, region: str, project_id: str) -> AccountSettings:
        """The same credentials, working in ``project_id`` of ``region`` (a cross-region copy's destination)."""
        ims, iam = self.region_endpoints(region)
        fields = self.model_dump(exclude={"regions", "kms_endpoint"})
        fields.update(region=region, project_id=project_id, ims_endpoint=ims, iam_endpoint=iam)
        return AccountSettings(**fields)


class Role(str, Enum):
    """What a principal may do, each role everything the one before may (docs/teams.md)."""

    READER = "reader"  # read what is in its accounts
    SUBMITTER = "submitter"  # also create batches and plans; cancel and retry its own
    OPERATOR = "operator"  # also cancel, retry and delete any batch in its accounts; account checks
    ADMIN = "admin"  # everything, and the audit trail

    @property
    def rank(self) -> int:
        return list(Role).index(self)


EVERY_ACCOUNT = ANY  # a principal's accounts: every one, now and later
_TOKEN_SHA256 = r"^[0-9a-f]{64}$"


class PrincipalSettings(BaseModel):
    """A named caller of the API: its token (as its SHA-256, so the configuration never holds the token; a plain
    token is accepted for local use), its role, the accounts it may act in (``*``: every one) and its limits, so that
    one client cannot fill Redis for everyone: requests a second (bursts of ``request_burst``, across every API
    replica) and items not yet finished (docs/teams.md, "Limits")."""

    token_sha256: Annotated[str | None, Field(pattern=_TOKEN_SHA256)] = None
    token: SecretStr | None = None
    role: Role = Role.READER
    accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    requests_per_second: Annotated[float, Field(gt=0, le=10_000)] = 50.0
    request_burst: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_unfinished_items: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000

    @field_validator("accounts", mode="before")
    @classmethod
    def _split_accounts(cls, v: object) -> object:
        return _comma_list(v)

    @model_validator(mode="after")
    def _one_token(self) -> PrincipalSettings:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token_sha256 (hex SHA-256 of the token) or token")
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("token must be at least 16 characters (use token_sha256 outside local set-ups)")
        return self

    def secret_values(self) -> list[str]:
        return [self.token.get_secret_value()] if self.token else []


FILE_SUFFIX = "_FILE"


def _secret_field(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and "SecretStr" in repr(field.annotation)


def names_secret(path: list[str]) -> bool:
    """Whether a setting's path (``["flower_password"]``, ``["accounts", "prod", "secret_key"]``) is a secret."""
    if len(path) == 1:
        return _secret_field(Settings, path[0])
    if len(path) == 3 and path[0] == "accounts":
        return _secret_field(AccountSettings, path[2])
    if len(path) == 3 and path[0] == "principals":
        return _secret_field(PrincipalSettings, path[2])
    return False


class SecretFiles(PydanticBaseSettingsSource):
    """Every secret setting also from a file, as Docker and Kubernetes mount secrets: ``IMSREP_FLOWER_PASSWORD_FILE``,
    ``IMSREP_ACCOUNTS__PROD__SECRET_KEY_FILE``... name the file; its content, without trailing line breaks, is the
    value. A secret given both ways is refused: which one wins would be a guess."""

    def get_field_value(self, field: object, field_name: str) -> tuple[object, str, bool]:
        return None, field_name, False  # read as a whole in __call__

    def __call__(self) -> dict[str, object]:
        found: dict[str, object] = {}
        environ = {name.upper(): value for name, value in os.environ.items() if value}
        for variable, location in sorted(environ.items()):
            if not (variable.startswith(ENV_PREFIX) and variable.endswith(FILE_SUFFIX)):
                continue
            direct = variable.removesuffix(FILE_SUFFIX)
            path = direct.removeprefix(ENV_PREFIX).lower().split("__")
            if not names_secret(path):
                continue
            if direct in environ:
                raise SettingsError(f"{variable}: give the secret once, in {direct} or in {variable}, not both")
            try:
                value = Path(location).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"{variable}: cannot read {location} ({type(exc).__name__})") from None
            if not value.strip():
                raise SettingsError(f"{variable}: {location} is empty")
            node = found
            for part in path[:-1]:
                node = node.setdefault(part, {})  # type: ignore[assignment]
            node[path[-1]] = value  # type: ignore[index]
            if path[0] == "accounts":  # the worker reads an account's credentials again when the file changes
                node.setdefault("secret_files", {})[path[-1]] = location  # type: ignore[union-attr]
        return found


class Settings(BaseSettings):
    """Everything the API, the workers and the CLI read, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="ignore",
    )

    demo: bool = False
    # Redis: one server (``redis://host:port/db``, ``rediss://`` for TLS) or a Sentinel-watched master
    # (``sentinel://h1:26379;sentinel://h2:26379/0`` with ``redis_sentinel_master``). Passwords are settings of their
    # own, never part of the URL a process prints.
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("IMSREP_REDIS_URL", "REDIS_URL"),
    )
    redis_sentinel_master: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = None
    redis_password: SecretStr | None = None  # the Redis servers' (AUTH); with Sentinel, the master's and replicas'
    redis_sentinel_password: SecretStr | None = None  # the Sentinels' own, when they ask for one
    # Anyone who reaches a Redis without a password can queue copies and shares: outside the demo, such a Redis (or
    # Sentinels without one) is refused unless this says it is meant.
    redis_allow_no_password: bool = False
    # TLS (a rediss:// URL): the servers' certificates are checked, host name included, against this CA bundle
    # (None: the system's).
    redis_tls_ca_file: FilePath | None = None
    # TLS through Sentinel: the Sentinels, the master and its replicas all speak TLS only, checked the same way (a
    # sentinel:// URL has no TLS scheme of its own).
    redis_sentinel_tls: bool = False
    # Every Redis command gives up after this long without an answer (a dead or partitioned master is noticed in
    # seconds, then Sentinel is asked again); connecting gives up sooner.
    redis_socket_timeout: Annotated[float, Field(gt=1, le=120)] = 5.0
    redis_connect_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    # Writes that must outlive a failover (a batch before its 202, a copy attempt before the copy call) are
    # confirmed by this many replicas (WAIT) within redis_replica_timeout; 0: a single Redis, no confirmation.
    redis_min_replicas: Annotated[int, Field(ge=0, le=16)] = 0
    redis_replica_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    state_dir: Path = Path(".state")
    key_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "imsrep"

    accounts: dict[str, AccountSettings] = Field(default_factory=dict)
    default_account: str | None = None

    # The submission API. Callers are principals (by name: IMSREP_PRINCIPALS__<NAME>__ROLE=...), those of
    # principals_file (re-read when it changes: a token is rotated without a restart), and IMSREP_API_TOKENS, each
    # an admin of every account with no limits (the deployment's own tokens; a client to hold back is a principal).
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    principals: dict[str, PrincipalSettings] = Field(default_factory=dict)
    principals_file: Path | None = None
    max_batch_items: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    # Tag every copy with where it came from (imsrep_source, imsrep_batch) unless its item says otherwise.
    provenance_tags: bool = False
    max_request_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    worker_seen_seconds: Annotated[float, Field(gt=0)] = 60.0
    # How long an Idempotency-Key is remembered: the same key with the same body within it gets the first answer.
    idempotency_seconds: Annotated[int, Field(ge=60, le=30 * 86_400)] = 86_400
    # How long a plan (a dry run's verdicts and summary) is kept.
    plan_seconds: Annotated[int, Field(ge=60, le=30 * 86_400)] = 86_400

    # Flower.
    flower_user: str = "admin"
    flower_password: SecretStr = SecretStr("")

    # Calls to the cloud: httpx timeouts are always set.
    http_connect_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    http_read_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0

    # Polling of IMS jobs: countdowns, never a sleep inside a task. Each poll is due when the job should end
    # (worker.steps.poll), so the bounds are wide: the first copies of an account are probed after a second, and a
    # long copy is not woken every half minute (a countdown stays well inside the visibility timeout).
    poll_initial_delay: Annotated[float, Field(ge=0, le=600)] = 1.0
    poll_min_interval: Annotated[float, Field(gt=0, le=600)] = 1.0
    poll_max_interval: Annotated[float, Field(gt=0, le=600)] = 300.0
    poll_deadline_seconds: Annotated[float, Field(gt=0)] = 7200.0

    # Retries of transient cloud errors: exponential backoff with full jitter, capped.
    retry_base_delay: Annotated[float, Field(gt=0, le=600)] = 1.0
    retry_max_delay: Annotated[float, Field(gt=0, le=600)] = 60.0
    retry_max_attempts: Annotated[int, Field(ge=0, le=1000)] = 12

    # Celery reliability knobs (see docs in config/celery.py).
    visibility_timeout: Annotated[int, Field(ge=10)] = 600
    task_soft_time_limit: Annotated[float, Field(gt=0)] = 60.0
    task_time_limit: Annotated[float, Field(gt=0)] = 90.0
    max_redeliveries: Annotated[int, Field(ge=1, le=100)] = 5
    # A submit holds its item's lock in leases this long, renewed every third of it while it runs: a lock whose
    # holder died, or whose release a failover lost, keeps the item's next submit waiting at most this long.
    submit_lease_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0
    worker_concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    # Threads per pool process on which a message's several steps (a bundle) run side by side, and the submits the
    # poll before it handed on (worker.behind): each mostly waits on the cloud, 150-300 ms away (docs/performance.md,
    # "Latency"); two bundles' worth. 1 runs them in turn.
    step_threads: Annotated[int, Field(ge=1, le=64)] = 50
    # On SIGTERM a worker lets running tasks finish for this long, then hands the rest back to Redis (worker/run.py):
    # keep it under the stop's grace period (docker compose: 30 s), or the stop ends in a SIGKILL.
    worker_soft_shutdown_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0

    # Maintenance: the reconciler resends a step that is this many seconds past its due time (its message was
    # lost), and frees or restores slots that disagree with their items.
    reconcile_interval: Annotated[float, Field(gt=0)] = 30.0
    stall_seconds: Annotated[float, Field(gt=0)] = 15.0

    # The cloud as it is: an account whose requests fail this many times in a row is given a rest (its circuit
    # opens; items wait, spending no retries) and probed once per interval, the interval doubling up to the max;
    # the same intervals pace the probing of slots that IMS said were full (copies made elsewhere).
    circuit_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    probe_interval: Annotated[float, Field(gt=0, le=600)] = 5.0
    probe_max_interval: Annotated[float, Field(gt=0, le=600)] = 60.0
    # The private-image quota is read again after this long (and at once when IMS refuses a copy for it); items
    # that find no headroom wait, and fail with QUOTA_EXCEEDED only after the quota has been full this long.
    quota_refresh_seconds: Annotated[float, Field(gt=0)] = 60.0
    quota_wait_seconds: Annotated[float, Field(gt=0)] = 86_400.0

    # Retention: a finished batch (every item terminal) is deleted with its items this many days after its last
    # item ended; a sweep looks every retention_sweep_seconds. Running items are never touched.
    retention_days: Annotated[float, Field(gt=0)] = 30.0
    retention_sweep_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # Standing policies: beat looks for due runs every policy_tick_seconds (a run starts at most that late); a
    # policy's interval may not be shorter than policy_min_interval (each run lists the whole selection).
    policy_tick_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    policy_min_interval: Annotated[int, Field(ge=1)] = 60
    # The audit trail (docs/teams.md) is kept apart from the batches, and this long: deleting or expiring a batch
    # leaves its records.
    audit_retention_days: Annotated[float, Field(gt=0)] = 365.0

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: one readable line per record; json: one JSON object per line, for a log shipper (config/logging.py).
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, v: str) -> str:
        redis_nodes(v)  # raises ValueError naming what is wrong
        return v

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, v: object) -> object:
        return _comma_list(v)

    @field_validator("accounts", "principals")
    @classmethod
    def _names(cls, v: dict[str, object]) -> dict[str, object]:
        for name in v:
            if not ACCOUNT_NAME.fullmatch(name):
                raise ValueError(f"name {name!r} must match {ACCOUNT_NAME.pattern}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.default_account is None and self.accounts:
            self.default_account = sorted(self.accounts)[0] if "default" not in self.accounts else "default"
        if self.default_account is not None and self.default_account not in self.accounts:
            raise ValueError(f"IMSREP_DEFAULT_ACCOUNT: {self.default_account!r} is not one of the configured accounts")
        for name, principal in self.principals.items():
            if unknown := principal_accounts_unknown(principal, self.accounts):
                raise ValueError(f"IMSREP_PRINCIPALS__{name.upper()}__ACCOUNTS: {unknown}")
        if is_sentinel_url(self.redis_url) and not self.redis_sentinel_master:
            raise ValueError("IMSREP_REDIS_SENTINEL_MASTER: is required with a sentinel:// IMSREP_REDIS_URL")
        if self.redis_replica_timeout >= self.redis_socket_timeout:
            raise ValueError("IMSREP_REDIS_REPLICA_TIMEOUT must be below IMSREP_REDIS_SOCKET_TIMEOUT")
        if self.redis_sentinel_tls and not is_sentinel_url(self.redis_url):
            raise ValueError(
                "IMSREP_REDIS_SENTINEL_TLS: is for a sentinel:// IMSREP_REDIS_URL (one server: give rediss://)"
            )
        if self.redis_tls_ca_file is not None and not self.redis_tls:
            raise ValueError(
                "IMSREP_REDIS_TLS_CA_FILE: is for TLS, which needs a rediss:// IMSREP_REDIS_URL "
                "(or IMSREP_REDIS_SENTINEL_TLS=true)"
            )
        if self.redis_password is not None and redis_nodes(self.redis_url).password:
            raise ValueError("IMSREP_REDIS_PASSWORD: give the password once, here or in IMSREP_REDIS_URL, not both")
        if unlocked := self._unlocked_redis():
            raise ValueError(unlocked)
        if self.poll_min_interval > self.poll_max_interval:
            raise ValueError("IMSREP_POLL_MIN_INTERVAL must not exceed IMSREP_POLL_MAX_INTERVAL")
        if self.probe_interval > self.probe_max_interval:
            raise ValueError("IMSREP_PROBE_INTERVAL must not exceed IMSREP_PROBE_MAX_INTERVAL")
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("IMSREP_TASK_SOFT_TIME_LIMIT must be below IMSREP_TASK_TIME_LIMIT")
        if self.visibility_timeout <= self.longest_quiet:
            raise ValueError(
                "IMSREP_VISIBILITY_TIMEOUT must exceed the longest countdown plus task_time_limit "
                f"({self.longest_quiet:.0f}s), or Redis redelivers work that is still running"
            )
        if not self.demo:
            if any(t.get_secret_value() in _WEAK_SECRETS for t in self.api_tokens):
                raise ValueError("IMSREP_API_TOKENS: a default or demo token is refused outside demo mode")
            if self.flower_password.get_secret_value() in _WEAK_SECRETS - {""}:
                raise ValueError("IMSREP_FLOWER_PASSWORD: a default or demo password is refused outside demo mode")
        return self

    def _unlocked_redis(self) -> str | None:
        """Why the configured Redis is open to anyone who reaches it (None: it is not, or that is allowed). An unset
        IMSREP_REDIS_URL is ``imsrep up``'s own Redis, which the stack locks with a password of its own."""
        if self.demo or self.redis_allow_no_password or "redis_url" not in self.model_fields_set:
            return None
        allow = f"or set {ENV_PREFIX}REDIS_ALLOW_NO_PASSWORD=true to use it without one"
        if self.redis_password is None and not redis_nodes(self.redis_url).password:
            return (
                f"{ENV_PREFIX}REDIS_PASSWORD: required, as anyone who reaches a Redis without a password can queue "
                f"copies and shares: set it (or {ENV_PREFIX}REDIS_PASSWORD_FILE), {allow}"
            )
        if is_sentinel_url(self.redis_url) and self.redis_sentinel_password is None:
            return (
                f"{ENV_PREFIX}REDIS_SENTINEL_PASSWORD: required, as anyone who reaches a Sentinel without a password "
                f"can move the master: set it (or {ENV_PREFIX}REDIS_SENTINEL_PASSWORD_FILE), {allow}"
            )
        return None

    @property
    def redis_tls(self) -> bool:
        """Whether every connection to Redis (and to the Sentinels) is TLS."""
        return is_tls_url(self.redis_url) or self.redis_sentinel_tls

    @property
    def longest_countdown(self) -> float:
        """The longest delay any step schedules its next message with."""
        return max(self.poll_max_interval, self.retry_max_delay, self.poll_initial_delay, self.probe_max_interval)

    @property
    def longest_quiet(self) -> float:
        """The longest an item may legitimately go without an update: a countdown plus a task at its time limit."""
        return self.longest_countdown + self.task_time_limit

    def account(self, name: str | None = None) -> AccountSettings:
        key = name or self.default_account
        if key is None or key not in self.accounts:
            raise KeyError(name or "<default>")
        return self.accounts[key]

    def require_credentials(self) -> None:
        """Raise ``SettingsError`` naming the variables to set when an account has no credentials: the workers
        (and ``imsrep up``) need them; the API, which never calls the cloud, does not."""
        missing = []
        for name, account in sorted(self.accounts.items()):
            if not account.has_credentials:
                var = f"{ENV_PREFIX}ACCOUNTS__{name.upper()}__"
                missing.append(
                    f"account {name!r} has no credentials: set {var}ACCESS_KEY and {var}SECRET_KEY (with "
                    f"{var}SECURITY_TOKEN for a temporary pair), or {var}IAM_USER, {var}IAM_PASSWORD and "
                    f"{var}IAM_DOMAIN, or {var}CREDENTIALS_SOURCE=metadata (an ECS agency)"
                )
        if missing:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(missing))

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction filters and the secret-leak tests."""
        values = [t.get_secret_value() for t in self.api_tokens]
        for principal in self.principals.values():
            values.extend(principal.secret_values())
        values.append(self.flower_password.get_secret_value())
        values.extend(p.get_secret_value() for p in (self.redis_password, self.redis_sentinel_password) if p)
        if password := redis_nodes(self.redis_url).password:
            values.append(password)
        for acct in self.accounts.values():
            values.extend(acct.secret_values())
        return [v for v in values if v]


def principal_accounts_unknown(principal: PrincipalSettings, accounts: dict[str, AccountSettings]) -> str | None:
    """What is wrong with a principal's accounts (None: nothing): each must be configured, or ``*`` alone."""
    if EVERY_ACCOUNT in principal.accounts:
        return None if principal.accounts == [EVERY_ACCOUNT] else f"{EVERY_ACCOUNT!r} must stand alone"
    unknown = sorted(set(principal.accounts) - set(accounts))
    return f"not configured accounts: {', '.join(unknown)}" if unknown else None


@dataclass(frozen=True)
class RedisNodes:
    """What ``IMSREP_REDIS_URL`` says: one server, or the Sentinels that know the master (host, port) pairs."""

    sentinel: bool
    hosts: tuple[tuple[str, int], ...]
    db: int
    password: str | None = field(default=None, repr=False)


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_sentinel_url(url: str) -> bool:
    return url.startswith("sentinel://")


def is_tls_url(url: str) -> bool:
    return url.startswith("rediss://")


def redis_nodes(url: str) -> RedisNodes:
    """Parse ``IMSREP_REDIS_URL``: ``redis://[:password@]host[:port][/db]`` (or ``rediss://``, ``unix://``) or
    ``sentinel://host:port;sentinel://host:port[/db]`` (kombu's form: the database, if any, on the last one).
    Raises ValueError saying what is wrong."""
    if not is_sentinel_url(url):
        parts = urlsplit(url)
        if parts.scheme not in _REDIS_SCHEMES:
            raise ValueError("must be redis://host:port/db, rediss://..., unix://... or sentinel://host:port;...")
        host = parts.hostname or ""
        return RedisNodes(False, ((host, parts.port or 6379),), _db(parts.path), parts.password)
    hosts, db, password = [], 0, None
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError("a Sentinel URL lists sentinel://host:port entries separated by ';'")
        hosts.append((parts.hostname, parts.port or 26379))
        db = _db(parts.path) if parts.path.strip("/") else db
        password = parts.password or password
    return RedisNodes(True, tuple(hosts), db, password)


def without_password(url: str) -> str:
    """``IMSREP_REDIS_URL`` with any password taken out (each part of a Sentinel URL): the form to print or store."""
    parts = []
    for part in url.split(";"):
        split = urlsplit(part)
        if split.password is None:
            parts.append(part)
            continue
        user = f"{split.username}@" if split.username else ""
        parts.append(split._replace(netloc=user + split.netloc.rsplit("@", 1)[1]).geturl())
    return ";".join(parts)


def _db(path: str) -> int:
    number = path.strip("/") or "0"
    if not number.isdigit():
        raise ValueError(f"the database must be a number, not {number!r}")
    return int(number)


def _env_name(loc: tuple[int | str, ...]) -> str:
    """Name the environment variable a validation error location comes from."""
    if loc[0] in ("accounts", "principals") and len(loc) >= 2:
        return ENV_PREFIX + "__".join(str(p).upper() for p in loc)
    name = str(loc[0]).upper()
    return name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name  # an alias is already a variable's name


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into one readable message per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "__root__")
            msg = err["msg"].removeprefix("Value error, ")
            # Cross-field checks have no location: their message names the variables itself.
            lines.append(f"{_env_name(loc)}: {msg}" if loc else msg)
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    return load_settings()
