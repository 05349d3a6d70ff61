"""Selection by filter: which of an account's images a batch takes (``Selector``), and what each becomes
(``Template``).

A selector names IMS listing filters (docs/ims-api.md §5), sent to IMS so it returns fewer pages, plus filters the
listing cannot do, which the worker applies to each record: a name prefix, encrypted or not (``__system__cmkid``
present), encrypted with a given key, Fast Create or not (``__lazyloading``), a size range (``__image_size``) and the
other end of a creation-time range (IMS takes one ``created_at`` condition). Every filter the record shows is
checked again on the worker's side, so a filter a real endpoint ignores cannot widen a campaign; the tag filter is
IMS's alone, as the form of tags in a listed record is not documented.

A template turns each selected image into an item: a name pattern (``{name}``, ``{region}``, ``{id8}``,
``{date}``; default the console's ``copy_<region>_<name>``), a description, a KMS key (or ``decrypt: true``: no
key, an unencrypted copy), an enterprise project and tags; and, as an item's, receivers to distribute each copy to
(``distribute``, ``withdraw_share``: docs/architecture.md "A distribution"), checked by the API with an item's rules
and the principal's scope over every receiver's account (``api.validation.Selection.accounts``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.settings import ACCOUNT_NAME
from worker.domain.naming import (
    NAME_MAX,
    TAG_KEY_MAX,
    TAG_VALUE_MAX,
    UUID_RE,
    key_ref_problem,
    name_problem,
)
from worker.domain.spec import ItemOptions, ItemSpec
from worker.ims.models import Image

GIB = 1024**3
PLACEHOLDERS = ("name", "region", "id8", "date")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
DATE_FORMAT = "%Y%m%d"  # {date}: the batch's day (UTC), e.g. 20261128
_SAMPLE = {"id8": "0123abcd", "date": "20261128"}  # what {id8} and {date} look like, for checks before any image
IMS_TIME = "%Y-%m-%dT%H:%M:%SZ"  # the listing's created_at filter form


class Selector(BaseModel):
    """Which images of an account a batch takes. Every filter given must hold; none given: every private image."""

    model_config = ConfigDict(extra="forbid")

    account: str | None = Field(
        None, pattern=ACCOUNT_NAME.pattern, description="Whose images are listed (a configured account; default)"
    )
    # Filters IMS's listing applies (and the worker checks again).
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX, description="Exact image name")
    status: Literal["queued", "saving", "active", "killed", "deleted"] | None = None
    image_type: Literal["private", "shared", "gold", "market"] = Field(
        "private", description="IMS `__imagetype`; private (your own images) unless said otherwise"
    )
    visibility: Literal["private", "public", "shared"] | None = None
    os_type: Literal["Linux", "Windows", "Other"] | None = Field(None, description="IMS `__os_type`")
    platform: str | None = Field(None, min_length=1, max_length=64, description="IMS `__platform`, e.g. CentOS")
    enterprise_project_id: str | None = Field(None, description='"0", a UUID, or "all_granted_eps"')
    disk_format: Literal["zvhd2", "vhd", "zvhd", "raw", "qcow2", "iso"] | None = None
    tag: str | None = Field(None, description="`key=value`: images carrying that tag (IMS filters it)")
    created_after: datetime | None = Field(None, description="Created at or after (UTC if no offset is given)")
    created_before: datetime | None = Field(None, description="Created before (UTC if no offset is given)")
    # Filters only the worker can apply, from each listed record.
    name_prefix: str | None = Field(None, min_length=1, max_length=NAME_MAX, description="Name starts with this")
    encrypted: bool | None = Field(None, description="Encrypted (true) or not (false)")
    kms_key: str | None = Field(None, description="Encrypted with this KMS key (ID or alias)")
    fast_create: bool | None = Field(None, description="Supports Fast Create (`__lazyloading`) or not")
    min_size_gb: float | None = Field(None, ge=0, description="At least this many GiB (`__image_size`)")
    max_size_gb: float | None = Field(None, ge=0, description="At most this many GiB (`__image_size`)")

    @field_validator("created_after", "created_before")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)

    @field_validator("enterprise_project_id")
    @classmethod
    def _eps(cls, v: str | None) -> str | None:
        if v is not None and v not in ("0", "all_granted_eps") and not UUID_RE.match(v):
            raise ValueError('must be "0", a UUID or "all_granted_eps"')
        return v

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str | None) -> str | None:
        if v is None:
            return v
        key, sep, value = v.partition("=")
        if not sep or not key.strip() or len(key) > TAG_KEY_MAX or len(value) > TAG_VALUE_MAX:
            raise ValueError(f"must be key=value (key 1-{TAG_KEY_MAX}, value 0-{TAG_VALUE_MAX} characters)")
        return v

    @field_validator("kms_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and (problem := key_ref_problem(v)):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Selector:
        if self.kms_key is not None and self.encrypted is False:
            raise ValueError("kms_key selects encrypted images; it cannot be combined with encrypted: false")
        low, high = self.min_size_gb, self.max_size_gb
        if low is not None and high is not None and low > high:
            raise ValueError("min_size_gb must not exceed max_size_gb")
        after, before = self.created_after, self.created_before
        if after is not None and before is not None and after >= before:
            raise ValueError("created_after must be before created_before")
        return self

    def listing_filters(self, cmk_id: str | None) -> dict[str, str]:
        """The query parameters of IMS's listing (``cmk_id``: the ``kms_key`` resolved to its key ID)."""
        filters = {
            "name": self.name,
            "status": self.status,
            "__imagetype": self.image_type,
            "visibility": self.visibility,
            "__os_type": self.os_type,
            "__platform": self.platform,
            "enterprise_project_id": self.enterprise_project_id,
            "disk_format": self.disk_format,
            "tag": self.tag,
            "__system__cmkid": cmk_id,
        }
        if self.created_after is not None:
            filters["created_at"] = f"gte:{self.created_after.strftime(IMS_TIME)}"
        elif self.created_before is not None:
            # IMS keeps whole seconds: every image created before it is at or before its whole second.
            filters["created_at"] = f"lte:{self.created_before.strftime(IMS_TIME)}"
        return {key: value for key, value in filters.items() if value is not None}

    def matches(self, image: Image, cmk_id: str | None) -> bool:
        """Whether a listed record passes every filter the record shows (the tag filter is IMS's alone)."""
        size = image.size_bytes
        checks = (
            self.name is None or image.name == self.name,
            self.name_prefix is None or image.name.startswith(self.name_prefix),
            self.status is None or image.status == self.status,
            image.image_type is None or image.image_type == self.image_type,
            self.visibility is None or image.visibility == self.visibility,
            self.os_type is None or image.os_type == self.os_type,
            self.platform is None or image.platform == self.platform,
            self.enterprise_project_id in (None, "all_granted_eps")
            or (image.enterprise_project_id or "0") == self.enterprise_project_id,
            self.disk_format is None or image.disk_format == self.disk_format,
            self.created_after is None or (image.created_at is not None and image.created_at >= self.created_after),
            self.created_before is None or (image.created_at is not None and image.created_at < self.created_before),
            self.encrypted is None or image.is_encrypted == self.encrypted,
            cmk_id is None or image.cmk_id == cmk_id,
            self.fast_create is None or image.supports_fast_create == self.fast_create,
            self.min_size_gb is None or (size is not None and size >= self.min_size_gb * GIB),
            self.max_size_gb is None or (size is not None and size <= self.max_size_gb * GIB),
        )
        return all(checks)


class Template(ItemOptions):
    """What each selected image becomes: an item's options (each checked as an item's is), with a name pattern for
    the name and ``decrypt`` to say "no key"; the account is the selector's."""

    name: str | None = Field(
        None,
        description="Name pattern: {name}, {region}, {id8} (the source ID's first 8), {date} (YYYYMMDD); "
        "default copy_{region}_{name}. A long {name} is cut so the whole stays within 128 characters",
        examples=["{name}-plain"],
    )
    account: str | None = Field(None, description="Not here: the selector names whose images (and so the account)")
    decrypt: bool = Field(False, description="Unencrypted copies (no key); cannot be combined with kms_key")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return v  # a pattern: name_problem(region) checks the names it yields

    @field_validator("account")
    @classmethod
    def _no_account(cls, v: str | None) -> str | None:
        if v is not None:
            raise ValueError("give the account on the selector (whose images are listed)")
        return v

    @model_validator(mode="after")
    def _key_or_decrypt(self) -> Template:
        if self.decrypt and self.kms_key is not None:
            raise ValueError("decrypt makes unencrypted copies; it cannot be combined with kms_key")
        return self

    def name_problem(self, region: str) -> str | None:
        """Why the name pattern cannot give valid IMS names in ``region`` (checked before any image is listed)."""
        if self.name is None:
            return None
        unknown = sorted({p for p in _PLACEHOLDER.findall(self.name) if p not in PLACEHOLDERS})
        if unknown:
            return f"unknown placeholder {{{unknown[0]}}}; the pattern may use {{name}}, {{region}}, {{id8}}, {{date}}"
        if "{" in _PLACEHOLDER.sub("", self.name) or "}" in _PLACEHOLDER.sub("", self.name):
            return "has an unmatched '{' or '}'"
        if "{name}" not in self.name and "{id8}" not in self.name:
            return "must contain {name} or {id8}: otherwise every copy gets the same name"
        shortest = render_name(self.name, "a", _SAMPLE["id8"], region, _SAMPLE["date"], cut=False)
        if len(shortest) > NAME_MAX:
            return f"yields names over {NAME_MAX} characters ({len(shortest)} even for a one-letter source name)"
        if problem := name_problem(shortest):
            return f"yields names that break IMS's rules: {shortest!r} {problem}"
        return None

    def item(self, image: Image, account: str, region: str, day: str) -> ItemSpec:
        """The item for one selected image (``day``: the batch's ``{date}``)."""
        name = None if self.name is None else render_name(self.name, image.name, image.id[:8], region, day)
        return self.spec(image.id, account, name)

    def spec(self, image_id: str, account: str | None = None, name: str | None = None) -> ItemSpec:
        """An item with the template's fields; each field is checked as an item's is (``ItemSpec``)."""
        fields = self.model_dump(include=_ITEM_FIELDS, exclude_none=True)
        return ItemSpec(image_id=image_id, name=name, account=account, **fields)

    def copy_name(self, region: str, source_id: str, source_name: str | None = None) -> re.Pattern[str]:
        """The names this template gives a copy of the source (``{date}``: any day; without ``source_name``, any
        ``{name}``): how a policy knows its own copy when the copy lacks its tags (``worker.steps.provenance``)."""
        pattern = self.name or DEFAULT_NAME
        day = _SAMPLE["date"]  # a stand-in of the right length, for the cut
        name = None if source_name is None else _cut_name(pattern, source_name, source_id[:8], region, day)
        values = {"name": ".*" if name is None else re.escape(name), "region": re.escape(region)}
        values |= {"id8": re.escape(source_id[:8]), "date": r"\d{8}"}
        parts = _PLACEHOLDER.split(pattern)  # literal text and placeholders in turn
        return re.compile("".join(values[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


DEFAULT_NAME = "copy_{region}_{name}"  # the console's default (worker.domain.naming.default_copy_name)

# The template's fields that an item takes as they are.
_ITEM_FIELDS = set(ItemOptions.model_fields) - {"name", "account"}


def render_name(pattern: str, name: str, id8: str, region: str, day: str, *, cut: bool = True) -> str:
    """The pattern filled in; with ``cut``, a long source name is shortened so the result fits in 128 characters."""
    values = {"name": _cut_name(pattern, name, id8, region, day) if cut else name, "region": region}
    values |= {"id8": id8, "date": day}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], pattern)


def _cut_name(pattern: str, name: str, id8: str, region: str, day: str) -> str:
    """``name`` shortened so that the pattern filled in fits in 128 characters."""
    if "{name}" not in pattern:
        return name
    values = {"region": region, "id8": id8, "date": day}
    fixed = len(_PLACEHOLDER.sub(lambda m: "" if m.group(1) == "name" else values[m.group(1)], pattern))
    room = max(1, (NAME_MAX - fixed) // pattern.count("{name}"))
    return name[:room].rstrip(" ")


def batch_day(created_at: float) -> str:
    """``{date}`` for a batch created at ``created_at`` (UTC)."""
    return datetime.fromtimestamp(created_at, tz=timezone.utc).strftime(DATE_FORMAT)


def selection_record(
    selector: Selector, template: Template, account: str, region: str, created_at: float, policy: str | None = None
) -> dict[str, Any]:
    """What a selecting batch or plan stores of its selection (``worker.steps.select.SelectionSpec`` reads it); a
    policy's run also names its policy, whose copies the run leaves out."""
    record = {
        "selector": selector.model_dump(mode="json", exclude_none=True),
        "template": template.model_dump(mode="json", exclude_none=True),
        "account": account,
        "region": region,
        "day": batch_day(created_at),
    }
    return record if policy is None else {**record, "policy": policy}
