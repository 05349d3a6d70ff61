"""What a user asks for: one replication item, checked for syntax only (IMS itself is asked later, by a worker).

Each field is checked on its own (``ItemSpec``); the rules that tie fields together, or need the server's settings
(``cross_field_problems``), once an item has its batch's defaults, so every problem is reported with its field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.settings import ACCOUNT_NAME, AGENCY_NAME, AccountSettings
from worker.domain.distribution import MAX_MEMBERS, Receiver, receivers_problem
from worker.domain.followups import PROVENANCE_KEYS
from worker.domain.naming import (
    PROJECT_ID_RE,
    PROJECT_NAME_RE,
    TAGS_MAX,
    KeyRef,
    RegionId,
    Tags,
    description_problem,
    is_uuid,
    name_problem,
)

MAX_LINE = 1_000_000_000  # a manifest line number; bounded so that no value is absurd


class ItemOptions(BaseModel):
    """The optional fields, shared by an item and a batch's ``defaults``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: str | None = Field(None, description="New image name; default copy_<region>_<source name>")
    description: str | None = Field(None, description="New image description (max 1024, no CR/LF, < or >)")
    kms_key: KeyRef | None = Field(
        None, description="KMS key ID or alias for an encrypted copy; omit for an unencrypted copy"
    )
    enterprise_project_id: str | None = Field(None, description='"0" (default project) or a UUID')
    account: str | None = Field(
        None, pattern=ACCOUNT_NAME.pattern, description="Configured account name; default if omitted"
    )
    target_region: RegionId | None = Field(
        None,
        description="Copy into this region (cross-region replication), one of the account's copy_regions; omit for a "
        "copy in the account's region",
    )
    target_project: str | None = Field(
        None, description="Destination project name (with target_region); default the region's default project"
    )
    agency: str | None = Field(
        None,
        pattern=f"^{AGENCY_NAME.pattern}$",
        description="IAM agency for a cross-region copy; default the account's agency_name",
    )
    share_with: list[str] | None = Field(
        None,
        description="Project IDs to share the copy with once it is active (the copy must be unencrypted), each in "
        "the account's share_projects",
    )
    distribute: list[Receiver] | None = Field(
        None,
        description="Receiving projects (configured accounts), each to accept the share and keep a private copy of "
        "its own under its key (docs/architecture.md, A distribution); the source copy is unencrypted",
    )
    withdraw_share: bool | None = Field(
        None, description="With distribute: remove the receivers from the copy's members once each has its own copy"
    )
    tags: Tags | None = Field(
        None,
        description="Tags for the copy, applied once it is active: at most 10, key 1-36 and value 0-43 characters",
        examples=[{"campaign": "rekey-2026"}],
    )
    provenance: bool | None = Field(
        None, description="Also tag the copy with imsrep_source and imsrep_batch; default IMSREP_PROVENANCE_TAGS"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and (problem := name_problem(v)):
            raise ValueError(problem)
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str | None) -> str | None:
        if v is not None and (problem := description_problem(v)):
            raise ValueError(problem)
        return v

    @field_validator("enterprise_project_id")
    @classmethod
    def _eps(cls, v: str | None) -> str | None:
        if v is not None and v != "0" and not is_uuid(v):
            raise ValueError('must be "0" or a UUID')
        return v

    @field_validator("target_project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        if v is not None and not PROJECT_NAME_RE.fullmatch(v):
            raise ValueError("must be a project name such as cn-south-1 or cn-south-1_apps (letters, digits, _ -)")
        return v

    @field_validator("share_with")
    @classmethod
    def _share_with(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not 1 <= len(v) <= MAX_MEMBERS:
            raise ValueError(f"must list 1 to {MAX_MEMBERS} project IDs (got {len(v)})")
        bad = [p for p in v if not PROJECT_ID_RE.fullmatch(p)]
        if bad:
            raise ValueError(f"must be project IDs of 32 hex characters (not {bad[0]!r})")
        if len(set(v)) != len(v):
            raise ValueError("must not list a project twice")
        return v

    @field_validator("distribute")
    @classmethod
    def _distribute(cls, v: list[Receiver] | None) -> list[Receiver] | None:
        if v is not None and (problem := receivers_problem(v)):
            raise ValueError(problem)
        return v


class ItemSpec(ItemOptions):
    """One image to replicate."""

    image_id: str = Field(..., description="Source image ID (UUID)")
    # Only the submitter knows where an item came from: kept so its results can be matched back to the manifest.
    line: int | None = Field(
        None,
        strict=True,  # a number, not "12" or true
        ge=1,
        le=MAX_LINE,
        description="The item's line in the submitter's manifest (imsrep submit sends it); shown with the item",
    )

    @field_validator("image_id")
    @classmethod
    def _image_id(cls, v: str) -> str:
        if not is_uuid(v):
            raise ValueError("must be an image ID in UUID form")
        return v.lower()

    def with_defaults(self, defaults: ItemOptions | None) -> ItemSpec:
        """Fill the fields this item leaves out from the batch's defaults (tags: the defaults', then the item's)."""
        if defaults is None:
            return self
        filled = {k: v for k, v in defaults.model_dump().items() if v is not None}
        filled.update({k: v for k, v in self.model_dump().items() if v is not None})
        if defaults.tags and self.tags:
            filled["tags"] = {**defaults.tags, **self.tags}
        return ItemSpec(**filled)


def cross_field_problems(
    spec: ItemSpec, account: AccountSettings | None, provenance_default: bool
) -> list[tuple[str, str]]:
    """The rules between fields, and against the account (``None``: not known here): (field, rule) pairs."""
    found: list[tuple[str, str]] = []
    cross = spec.target_region is not None
    for name in ("target_project", "agency"):
        if getattr(spec, name) is not None and not cross:
            found.append((name, "is only for a cross-region copy: give target_region too"))
    if cross and spec.kms_key is not None:
        found.append(("kms_key", "a cross-region copy cannot be encrypted (IMS takes no key for it); leave it out"))
    if spec.share_with is not None and spec.kms_key is not None:
        encrypted = "an encrypted copy cannot be shared (IMS refuses, IMG.0098): leave kms_key out to share"
        found.append(("share_with", encrypted))
    if spec.withdraw_share is not None and spec.distribute is None:
        found.append(("withdraw_share", "is only for a distribution: give distribute too"))
    if spec.distribute is not None:
        if spec.kms_key is not None:
            found.append(
                (
                    "kms_key",
                    "a distribution shares the copy, which must be unencrypted (IMG.0098): leave "
                    "kms_key out and give each receiver its key",
                )
            )
        if cross:
            found.append(("target_region", "a distribution's receivers say its regions: leave target_region out"))
    provenance = spec.provenance if spec.provenance is not None else provenance_default
    if provenance and spec.tags:
        if clash := sorted(set(spec.tags) & set(PROVENANCE_KEYS)):
            found.append(("tags", f"{', '.join(clash)} is set by the provenance tags; use another key"))
        elif len(spec.tags) + len(PROVENANCE_KEYS) > TAGS_MAX:
            room = TAGS_MAX - len(PROVENANCE_KEYS)
            found.append(("tags", f"at most {room} tags with provenance tags on (IMS allows {TAGS_MAX} per image)"))
    if account is not None:
        if cross and spec.target_region == account.region:
            own = f"is the account's own region ({account.region}); leave it out for a copy within the region"
            found.append(("target_region", own))
        if not cross and spec.share_with and account.project_id in spec.share_with:
            found.append(("share_with", "must not include the account's own project, which owns the copy"))
    return found
