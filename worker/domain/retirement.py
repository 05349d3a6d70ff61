"""Retirement: which of a policy's copies its retention rule no longer keeps (the README's Policies, "Retention").

A copy belongs to a **lineage**, the family of versions of one image: the value of a tag on its source named by
the rule (``lineage_tag``), or else the source's name stripped of trailing versions and dates (``golden-web-v7``
and ``golden-web-v8`` are ``golden-web``; ``ubuntu-22.04-20261201`` is ``ubuntu``). The name is the default
because it is what every image has and what IMS users version (the simulator's new images continue lineages so);
a tag is for names that do not say it. A copy's age and order are its **source's** (the version it carries, from
the source's ``created_at``), not its own: copies made together in a catch-up run still rank by version, and a
source whose copy was retired is not copied again (``kept_sources``), or a run would make again what the last one
deleted. Both are written on the copy when it is made (``lineage_tags``), so a run reads them with the copies'
one listing by tag. A copy made before these tags existed is a lineage of its own, ranked by its own age.

The rule keeps the newest ``keep_last`` copies of each lineage (ties by source ID, so every run agrees), and any
copy whose source is younger than ``keep_for`` seconds; with both, a copy either keeps stays. The others are
retired: ``report`` lists them (``retirable``), ``delete`` deletes them, except a copy shared with a project that
has accepted it (``kept_shared``), unless ``delete_shared``.

A policy that distributes (its template's ``distribute``) retires its own copies only, those in its destination
project carrying its tag: the receivers' private copies are theirs (each in its own project, under its key, outliving
the share: that is why they are made, docs/architecture.md "A distribution"), and no rule here lists or deletes them;
nor the copies carried into other regions for their receivers, which carry no policy tag. Receivers that accepted
the share keep the source copy ``kept_shared`` unless the template withdraws the share once each has its copy
(``withdraw_share``) or the rule says ``delete_shared``.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.domain.naming import TAG_KEY_MAX, TAG_VALUE_MAX

PROVENANCE_LINEAGE = "imsrep_lineage"  # the source's lineage
PROVENANCE_BORN = "imsrep_source_created"  # the source's created_at, UTC, as BORN_FORMAT
BORN_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_KEEP_FOR = 10 * 366 * 86_400  # ten years: past that, keep_for keeps everything
# Trailing parts of a name that version it: a v-number or a dotted version, a date or a timestamp, a build number.
_VERSION = re.compile(r"[-_.\s]+(?:v?\d+(?:\.\d+)*|\d{4}-\d{2}-\d{2}(?:[T_-]?\d{2,6})?)$", re.IGNORECASE)
_NOT_TAG_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")  # IMS tag values: letters, digits, '_', '.', '-' (kept to be safe)


class Action(str, Enum):
    REPORT = "report"  # listed as retirable, nothing deleted
    DELETE = "delete"


class Verdict(str, Enum):
    """What a run (or a plan of one) says of a copy its rule does not keep."""

    RETIRABLE = "retirable"  # action report: it would be retired
    RETIRED = "retired"  # deleted (a plan: would be)
    KEPT_SHARED = "kept_shared"  # shared with a project that accepted it, and delete_shared is off
    FAILED = "failed"  # IMS refused the deletion (its reason says why)


class Retention(BaseModel):
    """A policy's retention rule: keep the last ``keep_last`` copies per lineage and/or copies younger than
    ``keep_for`` seconds; what to do with the others. Only the policy's own copies: never a receiver's private
    copy of a distribution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int | None = Field(None, ge=1, le=1000, description="Copies kept per lineage, newest by source")
    keep_for: int | None = Field(
        None, ge=60, le=MAX_KEEP_FOR, description="Seconds: copies whose source is younger are kept"
    )
    action: Action = Field(Action.REPORT, description="`report`: list what would go; `delete`: delete it")
    delete_shared: bool = Field(
        False,
        description="Delete a copy even while a project it is shared with has accepted it (a distribution's "
        "receivers keep their own private copies: deleting the shared copy never touches them)",
    )
    lineage_tag: str | None = Field(
        None,
        min_length=1,
        max_length=TAG_KEY_MAX,
        description="A tag key on the sources whose value is the lineage (default: the name without versions)",
    )

    @model_validator(mode="after")
    def _keeps_something(self) -> Retention:
        if self.keep_last is None and self.keep_for is None:
            raise ValueError("give keep_last, keep_for or both")
        return self


def default_lineage(name: str) -> str:
    """The name without its trailing versions and dates (the whole name when nothing else would be left)."""
    stem = name
    while (shorter := _VERSION.sub("", stem)) != stem and shorter:
        stem = shorter
    return stem


def tag_value(text: str) -> str:
    """``text`` as a tag value IMS takes: other characters made '-', and a long one shortened with a digest of the
    whole, so two long lineages stay apart."""
    value = _NOT_TAG_CHAR.sub("-", text) or "-"
    if len(value) <= TAG_VALUE_MAX:
        return value
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{value[: TAG_VALUE_MAX - len(digest) - 1]}-{digest}"


def source_lineage(name: str, tagged: str | None) -> str:
    """A source's lineage as its copy's tag holds it: the value of the rule's ``lineage_tag`` on the source
    (``tagged``), or else its name without versions."""
    return tag_value(tagged or default_lineage(name))


def lineage_tags(lineage: str, born: datetime | None) -> dict[str, str]:
    """The tags a policy's copy carries for its retention: its source's lineage (``source_lineage``) and creation
    time."""
    tags = {PROVENANCE_LINEAGE: lineage}
    if born is not None:
        tags[PROVENANCE_BORN] = born.astimezone(timezone.utc).strftime(BORN_FORMAT)
    return tags


def parse_born(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, BORN_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Copy:
    """One of a policy's live copies, as its tags and its record say."""

    image_id: str
    source: str  # the source image ID (the copy's own ID for one whose tags do not say)
    lineage: str
    born: float  # the source's creation time (epoch seconds)
    shared: bool = False  # IMS shows it shared (its members decide whether it may go)

    @property
    def rank(self) -> tuple[float, str]:
        """Newest first by this: the source's creation time, then its ID (ties broken the same way every run)."""
        return (self.born, self.source)

    def ranked(self) -> list[str | float]:
        """What ``ranking`` keeps of it between a run's pages: its lineage and rank."""
        return [self.lineage, self.born, self.source]

    @classmethod
    def of_rank(cls, ranked: list[str | float]) -> Copy:
        lineage, born, source = ranked
        return cls(str(source), str(source), str(lineage), float(born))


def retired(copies: Iterable[Copy], rule: Retention, now: float) -> list[Copy]:
    """The copies ``rule`` does not keep, oldest first within each lineage, lineages in name order."""
    out: list[Copy] = []
    for _, newest_first in sorted(_lineages(copies).items()):
        out += [c for i, c in enumerate(newest_first) if not _kept(rule, i, c.born, now)][::-1]
    return out


def ranking(copies: Iterable[Copy], rule: Retention) -> list[Copy]:
    """The copies that decide ``kept_sources``: the newest ``keep_last`` of each lineage (a source with that many
    newer copies is not kept, whatever the older ones; none when only ``keep_for`` counts). A run keeps these
    between its pages rather than list every copy again for each."""
    if rule.keep_last is None:
        return []
    return [c for newest_first in _lineages(copies).values() for c in newest_first[: rule.keep_last]]


def _lineages(copies: Iterable[Copy]) -> dict[str, list[Copy]]:
    """The copies by lineage, newest first."""
    lineages: dict[str, list[Copy]] = defaultdict(list)
    for copy in copies:
        lineages[copy.lineage].append(copy)
    return {name: sorted(group, key=lambda c: c.rank, reverse=True) for name, group in lineages.items()}


def kept_sources(rule: Retention, candidates: Iterable[Copy], copies: Iterable[Copy], now: float) -> set[str]:
    """Of the sources a run would copy (``candidates``, as the copies they would make), those ``rule`` would keep
    beside the policy's ``copies`` and each other. A run copies only these, so that it never makes again what
    retirement took away (a retired copy's source still matches the selector)."""
    copies = list(copies)
    copied = {c.source for c in copies}
    everyone = copies + [c for c in candidates if c.source not in copied]
    return {
        c.source
        for newest_first in _lineages(everyone).values()
        for newer, c in enumerate(newest_first)
        if c.source not in copied and _kept(rule, newer, c.born, now)
    }


def _kept(rule: Retention, newer: int, born: float, now: float) -> bool:
    """Kept with ``newer`` copies of the lineage ranked above it, its source made at ``born``."""
    by_count = rule.keep_last is not None and newer < rule.keep_last
    by_age = rule.keep_for is not None and now - born < rule.keep_for
    return by_count or by_age


@dataclass(frozen=True)
class Judged:
    """A verdict on a copy the rule does not keep, as a run's history and a plan show it."""

    copy: Copy
    verdict: Verdict
    reason: str | None = None  # a failed deletion's reason code
    message: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "image_id": self.copy.image_id,
            "source": self.copy.source,
            "lineage": self.copy.lineage,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "message": self.message,
        }
