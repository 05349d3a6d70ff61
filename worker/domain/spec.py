"""What a user asks for: one replication item, checked for syntax only (IMS itself is asked later, by a worker)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.settings import ACCOUNT_NAME
from worker.domain.naming import UUID_RE, description_problem, key_ref_problem, name_problem, tags_problem


class ItemOptions(BaseModel):
    """The optional fields, shared by an item and a batch's ``defaults``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: str | None = Field(None, description="New image name; default copy_<region>_<source name>")
    description: str | None = Field(None, description="New image description (max 1024, no CR/LF, < or >)")
    kms_key: str | None = Field(
        None, description="KMS key ID or alias for an encrypted copy; omit for an unencrypted copy"
    )
    enterprise_project_id: str | None = Field(None, description='"0" (default project) or a UUID')
    account: str | None = Field(
        None, pattern=ACCOUNT_NAME.pattern, description="Configured account name; default if omitted"
    )
    tags: dict[str, str] | None = Field(
        None,
        description="Tags for the copy, applied once it is active: at most 10, key 1-36 and value 0-43 characters",
        examples=[{"campaign": "rekey-2026"}],
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

    @field_validator("kms_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and (problem := key_ref_problem(v)):
            raise ValueError(problem)
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None and (problem := tags_problem(v)):
            raise ValueError(problem)
        return v

    @field_validator("enterprise_project_id")
    @classmethod
    def _eps(cls, v: str | None) -> str | None:
        if v is not None and v != "0" and not UUID_RE.match(v):
            raise ValueError('must be "0" or a UUID')
        return v


class ItemSpec(ItemOptions):
    """One image to replicate."""

    image_id: str = Field(..., description="Source image ID (UUID)")

    @field_validator("image_id")
    @classmethod
    def _image_id(cls, v: str) -> str:
        if not UUID_RE.match(v):
            raise ValueError("must be an image ID in UUID form")
        return v.lower()

    def with_defaults(self, defaults: ItemOptions | None) -> ItemSpec:
        """Fill the fields this item leaves out from the batch's defaults."""
        if defaults is None:
            return self
        filled = {k: v for k, v in defaults.model_dump().items() if v is not None}
        filled.update({k: v for k, v in self.model_dump().items() if v is not None})
        return ItemSpec(**filled)
