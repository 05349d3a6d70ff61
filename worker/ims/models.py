"""What IMS and KMS return, as pydantic models that accept the types the services really send.

The services are loose: booleans arrive as ``"true"``/``"True"``, sizes as strings, times in two formats or as
``""``. Unknown fields are ignored, so a new service field never breaks a worker.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_LEGACY_TIME = "%d-%b-%Y %H:%M:%S:%f"  # "04-Jun-2015 18:11:06:586", an old IMS job format
GONE = frozenset({"killed", "deleted"})  # image statuses that will never become active
CLOCK_SKEW = 60.0  # seconds of disagreement tolerated between our clock and IMS's created_at
MEMBER_ANSWERS = ("accepted", "rejected")  # the statuses a member gives itself
MEMBER_STATUSES = ("pending", *MEMBER_ANSWERS)  # pending until it answers


def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from ISO 8601 (``Z`` or offset) or the legacy job format; ``None`` when empty or unknown.

    Unparseable times become ``None`` rather than an error: a timestamp is never worth failing a job poll over.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.strptime(text, _LEGACY_TIME)
        except ValueError:
            return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


Flag = Annotated[bool, BeforeValidator(_flag)]
Time = Annotated[datetime | None, BeforeValidator(parse_time)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptionalInt = Annotated[int | None, BeforeValidator(_blank_to_none)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, coerce_numbers_to_str=True, frozen=True)


class Image(_Lenient):
    """One record of ``GET /v2/cloudimages`` (docs/ims-api.md §5); ``__*`` fields are read by their alias."""

    id: str
    name: str = ""
    status: str = ""
    visibility: str | None = None
    image_type: str | None = Field(None, alias="__imagetype")
    whole_image: Flag = Field(False, alias="__whole_image")
    disk_format: str | None = None
    virtual_env_type: str | None = None
    size_bytes: OptionalInt = Field(None, alias="__image_size")  # a string of bytes on the wire
    min_disk: OptionalInt = None  # GB
    cmk_id: OptionalText = Field(None, alias="__system__cmkid")
    lazyloading: Flag = Field(False, alias="__lazyloading")
    data_origin: OptionalText = Field(None, alias="__data_origin")
    backup_id: OptionalText = Field(None, alias="__backup_id")
    description: str | None = Field(None, alias="__description")
    os_type: str | None = Field(None, alias="__os_type")
    platform: str | None = Field(None, alias="__platform")
    enterprise_project_id: str | None = None
    owner: str | None = None
    created_at: Time = None
    updated_at: Time = None
    # As the listing shows them: "key=value" strings (docs/ims-api.md §5 says a list of strings, not their form).
    tags: Annotated[list[str], BeforeValidator(_strings)] = Field(default_factory=list)

    def tag(self, key: str) -> str | None:
        """The value of tag ``key`` as listed (None when the listing does not show it)."""
        for listed in self.tags:
            name, sep, value = listed.partition("=")
            if sep and name == key:
                return value
        return None

    @property
    def copied_from(self) -> str | None:
        """The source image of a copy: IMS records ``__data_origin`` ``image,<region>,<source image ID>`` at its
        creation (docs/ims-api.md §5); None for any other image."""
        kind, _, rest = (self.data_origin or "").partition(",")
        return rest.rpartition(",")[2] or None if kind == "image" else None

    @property
    def is_full_ecs(self) -> bool:
        # The flag may be missing from list answers (docs/ims-api.md §5); the origin and backup ID also give it away.
        return self.whole_image or (self.data_origin or "").startswith("server_backup,") or bool(self.backup_id)

    @property
    def is_iso(self) -> bool:
        return (self.disk_format or "").lower() == "iso" or self.virtual_env_type == "IsoImage"

    @property
    def is_encrypted(self) -> bool:
        return bool(self.cmk_id)

    @property
    def supports_fast_create(self) -> bool:
        return self.lazyloading


class JobResult(_Lenient):
    """One (image, project) pair of a member job (the SDK's ``JobEntitiesResult``)."""

    image_id: str | None = None
    project_id: str | None = None
    status: str | None = None


def _results(value: Any) -> Any:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


class JobEntities(_Lenient):
    image_id: OptionalText = None
    image_name: str | None = None
    process_percent: float | None = None
    current_task: str | None = None
    sub_job_id: OptionalText = None
    # Member jobs (add, remove, accept or reject): one result per image and project.
    results: Annotated[list[JobResult], BeforeValidator(_results)] = Field(default_factory=list)


def _entities(value: Any) -> Any:
    return value if isinstance(value, dict) else {}


class Job(_Lenient):
    """An asynchronous IMS job (docs/ims-api.md §4). ``status`` is required: an answer without one is malformed."""

    INIT: ClassVar[str] = "INIT"
    RUNNING: ClassVar[str] = "RUNNING"
    SUCCESS: ClassVar[str] = "SUCCESS"
    FAIL: ClassVar[str] = "FAIL"

    status: Annotated[str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)]
    job_id: str | None = None
    job_type: str | None = None
    begin_time: Time = None
    end_time: Time = None
    error_code: OptionalText = None
    fail_reason: OptionalText = None
    entities: Annotated[JobEntities, BeforeValidator(_entities)] = Field(default_factory=JobEntities)

    @property
    def finished(self) -> bool:
        return self.status in (self.SUCCESS, self.FAIL)

    @property
    def succeeded(self) -> bool:
        return self.status == self.SUCCESS

    @property
    def failed(self) -> bool:
        return self.status == self.FAIL

    @property
    def image_id(self) -> str | None:
        return self.entities.image_id


class KmsKey(_Lenient):
    """A KMS ``KeyDetails`` record (docs/ims-api.md §7)."""

    key_id: str
    key_alias: str = ""
    key_state: str = ""
    default_key_flag: str = "0"
    key_spec: str | None = None
    key_description: str | None = None
    domain_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.key_state == "2"

    @property
    def is_default(self) -> bool:
        return self.default_key_flag == "1"


class ImageMember(_Lenient):
    """A project an image is shared with (docs/ims-api.md §9): ``status`` one of ``MEMBER_STATUSES``."""

    member_id: str
    status: str = ""
    image_id: str | None = None


class ImageQuota(_Lenient):
    """The private-image quota of the project (``GET /v1/cloudimages/quota``, docs/ims-api.md §5)."""

    used: int
    quota: int
    min: int | None = None
    max: int | None = None

    @property
    def headroom(self) -> int:
        return max(0, self.quota - self.used)
