"""Campaigns from the command line: the selector and template of ``imsrep select`` and ``imsrep plan``, built from
options, and the idempotency key of such a request.

The options are declared once here and used by both commands, so ``imsrep plan`` takes exactly the filters and
template ``imsrep select`` does. ``imsrep plan --filter key=value`` names a selector field directly (the API's
names, e.g. ``--filter encrypted=true --filter kms_key=old-key``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any

import typer

from worker.domain.selector import Selector

Filter = "Filters (which images)"
Shape = "Template (what each copy is)"

# Filters: the selector's fields (docs in worker/domain/selector.py).
SourceName = Annotated[str | None, typer.Option("--source-name", help="Exact image name", rich_help_panel=Filter)]
NamePrefix = Annotated[str | None, typer.Option(help="Image name starts with this", rich_help_panel=Filter)]
Status = Annotated[str | None, typer.Option(help="IMS status, e.g. active", rich_help_panel=Filter)]
ImageType = Annotated[str | None, typer.Option(help="IMS __imagetype (default: private)", rich_help_panel=Filter)]
Visibility = Annotated[str | None, typer.Option(help="private, public or shared", rich_help_panel=Filter)]
OsType = Annotated[str | None, typer.Option(help="Linux, Windows or Other", rich_help_panel=Filter)]
Platform = Annotated[str | None, typer.Option(help="IMS __platform, e.g. CentOS", rich_help_panel=Filter)]
SourceProject = Annotated[
    str | None,
    typer.Option("--source-enterprise-project", help='Enterprise project of the images: "0" or a UUID',
                 rich_help_panel=Filter),
]  # fmt: skip
DiskFormat = Annotated[str | None, typer.Option(help="e.g. zvhd2, qcow2", rich_help_panel=Filter)]
HasTag = Annotated[str | None, typer.Option("--has-tag", help="With this tag: key=value", rich_help_panel=Filter)]
CreatedAfter = Annotated[datetime | None, typer.Option(help="Created at or after (UTC)", rich_help_panel=Filter)]
CreatedBefore = Annotated[datetime | None, typer.Option(help="Created before (UTC)", rich_help_panel=Filter)]
Encrypted = Annotated[
    bool | None, typer.Option("--encrypted/--unencrypted", help="Encrypted or not", rich_help_panel=Filter)
]
EncryptedWith = Annotated[
    str | None,
    typer.Option("--encrypted-with", help="Encrypted with this KMS key (ID or alias)", rich_help_panel=Filter),
]
FastCreate = Annotated[
    bool | None,
    typer.Option("--fast-create/--no-fast-create", help="Supports Fast Create or not", rich_help_panel=Filter),
]
MinSize = Annotated[float | None, typer.Option(help="At least this many GiB", rich_help_panel=Filter)]
MaxSize = Annotated[float | None, typer.Option(help="At most this many GiB", rich_help_panel=Filter)]
Account = Annotated[str | None, typer.Option(help="Whose images (a configured account)", rich_help_panel=Filter)]

# The template.
NamePattern = Annotated[
    str | None,
    typer.Option("--name", help="Name pattern: {name} {region} {id8} {date}; default copy_{region}_{name}",
                 rich_help_panel=Shape),
]  # fmt: skip
Description = Annotated[str | None, typer.Option(help="Description of every copy", rich_help_panel=Shape)]
KmsKey = Annotated[
    str | None, typer.Option("--kms-key", help="Encrypt the copies with this key (ID or alias)", rich_help_panel=Shape)
]
Decrypt = Annotated[bool, typer.Option("--decrypt", help="Unencrypted copies (no key)", rich_help_panel=Shape)]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", help="Tag every copy: key=value (repeatable)", rich_help_panel=Shape)
]
TargetProject = Annotated[
    str | None,
    typer.Option("--enterprise-project-id", help='Enterprise project of the copies: "0" or a UUID',
                 rich_help_panel=Shape),
]  # fmt: skip
ToRegion = Annotated[
    str | None, typer.Option("--target-region", help="Copy into this region (cross-region)", rich_help_panel=Shape)
]
ToProject = Annotated[
    str | None,
    typer.Option("--target-project", help="Destination project name; default the region's default",
                 rich_help_panel=Shape),
]  # fmt: skip
Agency = Annotated[
    str | None, typer.Option("--agency", help="IAM agency of the cross-region copies", rich_help_panel=Shape)
]
ShareWith = Annotated[
    list[str] | None,
    typer.Option("--share-with", help="Share every copy with this project ID (repeatable)", rich_help_panel=Shape),
]
Distribute = Annotated[
    list[str] | None,
    typer.Option("--distribute", help="Hand every copy to this receiver, ACCOUNT[@REGION][:KEY] (repeatable): it "
                 "accepts the share and keeps a private copy under its KEY", rich_help_panel=Shape),
]  # fmt: skip
WithdrawShare = Annotated[
    bool,
    typer.Option("--withdraw-share", help="With --distribute: unshare once every receiver has its own copy",
                 rich_help_panel=Shape),
]  # fmt: skip
Provenance = Annotated[
    bool | None,
    typer.Option("--provenance/--no-provenance", help="Tag copies with imsrep_source and imsrep_batch",
                 rich_help_panel=Shape),
]  # fmt: skip


def key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} must be key=value", param_hint=option)
        found[key] = value
    return found


def receivers(values: list[str] | None) -> list[dict[str, str]] | None:
    """``--distribute ACCOUNT[@REGION][:KEY]`` values as a template's ``distribute`` (the API judges each)."""
    found = []
    for value in values or []:
        where, _, key = value.partition(":")
        account, _, region = where.partition("@")
        if not account:
            raise typer.BadParameter(f"{value!r} must be ACCOUNT[@REGION][:KEY]", param_hint="--distribute")
        found.append(compact({"account": account, "region": region or None, "key": key or None}))
    return found or None


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that were given, JSON-ready (times as ISO 8601)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items() if v not in (None, {})}


def template(
    name: str | None,
    description: str | None,
    kms_key: str | None,
    decrypt: bool,
    tags: list[str] | None,
    enterprise_project_id: str | None,
    *,
    target_region: str | None = None,
    target_project: str | None = None,
    agency: str | None = None,
    share_with: list[str] | None = None,
    distribute: list[str] | None = None,
    withdraw_share: bool = False,
    provenance: bool | None = None,
) -> dict[str, Any]:
    """The template options that were given."""
    fields = {
        "name": name,
        "description": description,
        "kms_key": kms_key,
        "decrypt": decrypt or None,
        "tags": key_values(tags, "--tag"),
        "enterprise_project_id": enterprise_project_id,
        "target_region": target_region,
        "target_project": target_project,
        "agency": agency,
        "share_with": share_with or None,
        "distribute": receivers(distribute),
        "withdraw_share": withdraw_share or None,
        "provenance": provenance,
    }
    return compact(fields)


def selector_from_filters(pairs: list[str] | None) -> dict[str, Any]:
    """``--filter key=value`` pairs as a selector; an unknown field is a usage error naming the known ones."""
    fields = key_values(pairs, "--filter")
    unknown = sorted(set(fields) - set(Selector.model_fields))
    if unknown:
        known = ", ".join(Selector.model_fields)
        raise typer.BadParameter(f"unknown filter {unknown[0]!r}; the filters are {known}", param_hint="--filter")
    return fields


def request_key(kind: str, body: dict[str, Any]) -> str:
    """An Idempotency-Key for a campaign request: the same command within a day finds its first batch or plan."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return f"imsrep-{kind}:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"
