"""An account's guardrails: the projects its copies may be shared with (``share_projects``), the regions they may go
to (``copy_regions``) and whether an encrypted source may be copied unencrypted (``allow_decrypt``).

The one place that decides them, for the API (a submission that breaks one is refused, ``worker.domain.spec``) and
for the worker, which checks again before the cloud call (validation, the copy, the member call), so that an item
that reached Redis some other way is refused too, never carried out. What an item says (``share_with``,
``target_region``) can be judged anywhere; a decryption only once the source's encryption is known (validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import ANY, AccountSettings
from worker.domain.reasons import ReasonCode

if TYPE_CHECKING:
    from worker.domain.selector import Selector, Template


@dataclass(frozen=True)
class Breach:
    """A guardrail an item breaks: its reason code, the item's field and the rule, which names the account."""

    reason: ReasonCode
    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


def share_breach(name: str, account: AccountSettings, projects: Sequence[str] | None) -> Breach | None:
    """Sharing with ``projects`` outside account ``name``'s ``share_projects`` (empty: sharing is refused)."""
    if not projects or ANY in account.share_projects:
        return None
    refused = [p for p in projects if p not in account.share_projects]
    if not refused:
        return None
    which = f"project {refused[0]} is" if len(refused) == 1 else f"projects {', '.join(refused)} are"
    rule = f"{which} not in account {name}'s share_projects (sharing is refused when the list is empty)"
    return Breach(ReasonCode.SHARE_NOT_ALLOWED, "share_with", rule)


def region_breach(name: str, account: AccountSettings, region: str | None) -> Breach | None:
    """A copy into ``region`` outside account ``name``'s ``copy_regions`` (unset: the regions under ``regions``)."""
    if region is None or region == account.region:
        return None
    allowed = copy_regions(account)
    if ANY in allowed or region in allowed:
        return None
    rule = f"region {region} is not in account {name}'s copy_regions"
    rule += f" ({', '.join(allowed)})" if allowed else " (none: copies stay in the account's region)"
    if account.copy_regions is None:
        rule += "; unset, it is the regions configured under the account's regions"
    return Breach(ReasonCode.REGION_NOT_ALLOWED, "target_region", rule)


def decrypt_breach(
    name: str, account: AccountSettings, *, source_encrypted: bool, kms_key: str | None
) -> Breach | None:
    """An unencrypted copy (no ``kms_key``) of an encrypted source while account ``name`` has ``allow_decrypt`` off."""
    if account.allow_decrypt or not source_encrypted or kms_key:
        return None
    rule = f"the source image is encrypted and account {name}'s allow_decrypt is false: name a kms_key to re-key it"
    return Breach(ReasonCode.DECRYPT_NOT_ALLOWED, "kms_key", rule)


def selection_decrypts(selector: Selector, template: Template) -> bool:
    """Whether a selection asks outright for unencrypted copies of encrypted images: its template says ``decrypt``,
    or gives no key for images its selector chooses because they are encrypted."""
    chosen_encrypted = selector.encrypted is True or selector.kms_key is not None
    return template.kms_key is None and (template.decrypt or chosen_encrypted)


def item_breaches(
    name: str, account: AccountSettings, *, share_with: Sequence[str] | None, target_region: str | None
) -> list[Breach]:
    """The guardrails that what an item says breaks (its decryption is judged with its source: ``decrypt_breach``)."""
    found = (share_breach(name, account, share_with), region_breach(name, account, target_region))
    return [breach for breach in found if breach is not None]


def copy_regions(account: AccountSettings) -> list[str]:
    """The regions the account's copies may go to besides its own: ``copy_regions``, by default the ``regions``
    it has settings for (destinations it was set up for, not any region Huawei's default endpoints reach)."""
    return account.copy_regions if account.copy_regions is not None else sorted(account.regions)
