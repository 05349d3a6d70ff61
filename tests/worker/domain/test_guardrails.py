"""An account's guardrails: sharing only with listed projects (none by default), copies only into listed regions
(by default those configured under ``regions``), decryption only when allowed; ``*`` allows any."""

from __future__ import annotations

import pytest

from config.settings import AccountSettings
from worker.domain.guardrails import (
    copy_regions,
    decrypt_breach,
    item_breaches,
    region_breach,
    selection_decrypts,
    share_breach,
)
from worker.domain.reasons import ReasonCode
from worker.domain.selector import Selector, Template

FRIEND, STRANGER, OTHER = "b" * 32, "c" * 32, "d" * 32


def _account(**fields: object) -> AccountSettings:
    return AccountSettings(project_id="a" * 32, access_key="AK", secret_key="SK", **fields)


def test_sharing_is_refused_by_default_and_allowed_only_with_listed_projects() -> None:
    refused = share_breach("prod", _account(), [FRIEND])
    assert refused is not None and refused.reason is ReasonCode.SHARE_NOT_ALLOWED and refused.field == "share_with"
    assert str(refused) == (
        f"share_with: project {FRIEND} is not in account prod's share_projects (sharing is refused when the list is "
        "empty)"
    )
    listed = _account(share_projects=[FRIEND])
    assert share_breach("prod", listed, [FRIEND]) is None
    both = share_breach("prod", listed, [FRIEND, STRANGER, OTHER])
    assert both is not None and f"projects {STRANGER}, {OTHER} are not in account prod's" in both.rule
    assert share_breach("prod", _account(share_projects=["*"]), [STRANGER, OTHER]) is None
    assert share_breach("prod", _account(), None) is None and share_breach("prod", _account(), []) is None


def test_regions_default_to_those_configured_and_a_star_allows_any() -> None:
    mapped = _account(regions={"cn-south-1": {}, "ap-southeast-1": {}})
    assert copy_regions(mapped) == ["ap-southeast-1", "cn-south-1"]
    assert region_breach("prod", mapped, "cn-south-1") is None
    refused = region_breach("prod", mapped, "cn-east-3")
    assert refused is not None and refused.reason is ReasonCode.REGION_NOT_ALLOWED and refused.field == "target_region"
    assert refused.rule == (
        "region cn-east-3 is not in account prod's copy_regions (ap-southeast-1, cn-south-1); unset, it is the "
        "regions configured under the account's regions"
    )
    # Listed, the list alone decides: a configured region is not enough.
    listed = _account(regions={"cn-south-1": {}}, copy_regions=["cn-east-3"])
    assert region_breach("prod", listed, "cn-east-3") is None and region_breach("prod", listed, "cn-south-1")
    none = region_breach("prod", _account(copy_regions=[]), "cn-south-1")
    assert none is not None and "(none: copies stay in the account's region)" in none.rule
    assert region_breach("prod", _account(copy_regions=["*"]), "eu-west-101") is None
    assert region_breach("prod", _account(), None) is None  # a copy within the region
    assert region_breach("prod", _account(), "cn-north-4") is None  # the account's own region is no destination


@pytest.mark.parametrize(
    ("allow", "encrypted", "key", "refused"),
    [
        (False, True, None, True),
        (False, True, "new-key", False),  # a re-key
        (False, False, None, False),
        (True, True, None, False),
    ],
)
def test_decryption_is_an_unencrypted_copy_of_an_encrypted_source(allow, encrypted, key, refused) -> None:
    breach = decrypt_breach("prod", _account(allow_decrypt=allow), source_encrypted=encrypted, kms_key=key)
    assert (breach is not None) is refused
    if breach is not None:
        assert breach.reason is ReasonCode.DECRYPT_NOT_ALLOWED and breach.field == "kms_key"
        assert "account prod's allow_decrypt is false" in breach.rule


def test_an_items_breaches_are_all_listed() -> None:
    found = item_breaches("prod", _account(), share_with=[FRIEND], target_region="cn-south-1")
    assert [b.reason for b in found] == [ReasonCode.SHARE_NOT_ALLOWED, ReasonCode.REGION_NOT_ALLOWED]
    assert item_breaches("prod", _account(), share_with=None, target_region=None) == []


@pytest.mark.parametrize(
    ("selector", "template", "decrypts"),
    [
        ({}, {"decrypt": True}, True),
        ({"encrypted": True}, {}, True),
        ({"kms_key": "old"}, {}, True),
        ({"encrypted": True}, {"kms_key": "new"}, False),  # a re-key
        ({}, {}, False),  # whether a source is encrypted is known only once it is read
        ({"encrypted": False}, {}, False),
    ],
)
def test_a_selection_asks_for_decryption_outright(selector: dict, template: dict, decrypts: bool) -> None:
    assert selection_decrypts(Selector(**selector), Template(**template)) is decrypts
