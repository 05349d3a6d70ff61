"""IMS's rules for image names, descriptions, IDs and key references (docs/ims-api.md §2), and the default copy name.

Every pattern is matched with ``fullmatch``: ``$`` alone would also match before a trailing line feed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, TypeVar

from pydantic import AfterValidator

NAME_MAX = 128
DESCRIPTION_MAX = 1024
# IMS's tag limits (docs/ims-api.md §9): at most 10 tags per image, key at most 36 characters, value at most 43.
TAGS_MAX = 10
TAG_KEY_MAX = 36
TAG_VALUE_MAX = 43

# Letters, digits, '-', '.', '_', space and Chinese characters; no leading or trailing space.
_NAME_CHARS = re.compile(r"[A-Za-z0-9\-._ \u4e00-\u9fa5]+")
_DESCRIPTION_FORBIDDEN = re.compile(r"[\r\n<>]")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Our batch labels: a short tag a user finds batches by (not an IMS concept).
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
LABEL_RULE = "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
# Region IDs (cn-north-4), IAM project names (cn-south-1, cn-south-1_apps) and project IDs (32 hex characters).
REGION_RE = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")
PROJECT_NAME_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")
PROJECT_ID_RE = re.compile(r"[0-9a-f]{32}")
# KMS aliases: letters, digits, '_', '-', ':' and '/', as in "ims/default".
_KEY_ALIAS = re.compile(r"[A-Za-z0-9_\-:/]{1,255}")


def is_uuid(value: str) -> bool:
    return UUID_RE.fullmatch(value) is not None


def name_problem(name: str) -> str | None:
    """Why ``name`` breaks IMS's image-name rules, or None when it is fine."""
    if not name:
        return "must be 1-128 characters"
    if len(name) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters (got {len(name)})"
    if name != name.strip(" "):
        return "must not start or end with a space"
    if not _NAME_CHARS.fullmatch(name):
        return "may contain only letters, digits, Chinese characters, '-', '.', '_' and spaces"
    return None


def description_problem(description: str) -> str | None:
    if len(description) > DESCRIPTION_MAX:
        return f"must be at most {DESCRIPTION_MAX} characters (got {len(description)})"
    if _DESCRIPTION_FORBIDDEN.search(description):
        return "must not contain carriage returns, line feeds, '<' or '>'"
    return None


def tags_problem(tags: dict[str, str]) -> str | None:
    """Why ``tags`` break IMS's tag limits, or None when they fit."""
    if len(tags) > TAGS_MAX:
        return f"must hold at most {TAGS_MAX} tags (got {len(tags)})"
    for key, value in tags.items():
        if not key.strip():
            return "a tag key must not be empty or blank"
        if len(key) > TAG_KEY_MAX:
            return f"tag key {key[:40]!r} must be at most {TAG_KEY_MAX} characters (got {len(key)})"
        if len(value) > TAG_VALUE_MAX:
            return f"value of tag {key!r} must be at most {TAG_VALUE_MAX} characters (got {len(value)})"
    return None


def key_ref_problem(ref: str) -> str | None:
    if is_uuid(ref) or _KEY_ALIAS.fullmatch(ref):
        return None
    return "must be a KMS key ID (UUID) or an alias such as ims/default"


def default_copy_name(region: str, source_name: str) -> str:
    """The console's default, ``copy_<region>_<source name>``, cut to IMS's 128 characters."""
    name = f"copy_{region}_{source_name}"[:NAME_MAX]
    return name.rstrip(" ")


def region_problem(region: str) -> str | None:
    return None if REGION_RE.fullmatch(region) else "must be a region ID such as cn-south-1"


T = TypeVar("T")


def _checked(problem: Callable[[T], str | None]) -> AfterValidator:
    """A field validator from one of the rules above: the rule's words are the field's error."""

    def check(value: T) -> T:
        if (found := problem(value)) is not None:
            raise ValueError(found)
        return value

    return AfterValidator(check)


# Fields that follow those rules, for the models that take them (an item's options, a distribution's receivers).
RegionId = Annotated[str, _checked(region_problem)]
KeyRef = Annotated[str, _checked(key_ref_problem)]
Tags = Annotated[dict[str, str], _checked(tags_problem)]
