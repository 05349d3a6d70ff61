"""Syntax checks of submissions: every problem of every item is reported, with its index, field and rule."""

from __future__ import annotations

import uuid

import pytest

from api.errors import FieldError, InvalidRequest
from api.validation import parse_batch, parse_item
from config.settings import load_settings
from worker.domain.naming import LABEL_RULE

ACCOUNT = {"project_id": "0123456789abcdef0123456789abcdef", "access_key": "AKX1", "secret_key": "SKX1"}
# The guardrails the tests of other rules need: the projects they share with, the region they copy to.
OPEN = {"share_projects": ["fedcba9876543210fedcba9876543210", "a" * 32], "copy_regions": ["cn-south-1"]}
FRIEND, STRANGER = "b" * 32, "c" * 32


@pytest.fixture
def settings():
    return load_settings(
        redis_url="redis://127.0.0.1:1/0",
        redis_allow_no_password=True,  # never reached
        api_tokens="validation-token-1",
        accounts={"default": {**ACCOUNT, **OPEN}, "prod": {**ACCOUNT, **OPEN}},
        max_batch_items=5,
    )


@pytest.fixture
def guarded():
    """``prod`` shares with FRIEND only and copies to cn-south-1 only; ``locked`` has every guardrail's default
    (no sharing, no region besides its own, none configured) and no decryption."""
    return load_settings(
        redis_url="redis://127.0.0.1:1/0",
        redis_allow_no_password=True,  # never reached
        api_tokens="validation-token-1",
        accounts={
            "prod": {**ACCOUNT, "share_projects": [FRIEND], "copy_regions": ["cn-south-1"]},
            "locked": {**ACCOUNT, "allow_decrypt": False},
        },
    )


def _image() -> str:
    return str(uuid.uuid4())


def _refusal(call, *args) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        call(*args)
    return info.value


def test_good_batch_applies_defaults_and_resolves_accounts(settings) -> None:
    upper = _image().upper()
    items = parse_batch(
        {
            "items": [{"image_id": upper}, {"image_id": _image(), "name": "own", "account": "prod"}],
            "defaults": {"name": "shared", "kms_key": "ims/default"},
        },
        settings,
    ).items
    assert [(i.spec.name, i.spec.kms_key, i.account) for i in items] == [
        ("shared", "ims/default", "default"),
        ("own", "ims/default", "prod"),
    ]
    assert items[0].spec.image_id == upper.lower()


def test_every_bad_item_is_listed_with_index_field_and_rule(settings) -> None:
    payload = {
        "items": [
            {"image_id": _image()},
            {"image_id": "not-a-uuid", "name": " padded"},
            {"image_id": _image(), "description": "a <b>"},
            7,
            {"image_id": _image(), "colour": "red", "account": "nowhere"},
        ]
    }
    error = _refusal(parse_batch, payload, settings)
    assert error.detail == "4 of 5 items are invalid; nothing was stored"
    assert set(error.errors) == {
        FieldError(1, "image_id", "must be an image ID in UUID form"),
        FieldError(1, "name", "must not start or end with a space"),
        FieldError(2, "description", "must not contain carriage returns, line feeds, '<' or '>'"),
        FieldError(3, "item", "must be a JSON object"),
        FieldError(4, "colour", "is not a known field"),
        FieldError(4, "account", "must be one of the configured accounts: default, prod"),
    }


def test_unknown_account_alone_is_a_refusal(settings) -> None:
    error = _refusal(parse_batch, {"items": [{"image_id": _image(), "account": "staging"}]}, settings)
    assert error.errors == [FieldError(0, "account", "must be one of the configured accounts: default, prod")]


def test_a_bad_default_is_reported_once_and_items_are_still_checked(settings) -> None:
    payload = {"items": [{"image_id": _image()}, {"image_id": "x"}], "defaults": {"account": "staging"}}
    error = _refusal(parse_batch, payload, settings)
    assert error.errors == [
        FieldError(None, "defaults.account", "must be one of the configured accounts: default, prod"),
        FieldError(1, "image_id", "must be an image ID in UUID form"),
    ]
    assert error.detail.startswith("defaults.account: must be one of the configured accounts")
    bad_type = _refusal(parse_batch, {"items": [{"image_id": _image()}], "defaults": {"name": 3}}, settings)
    assert bad_type.errors == [FieldError(None, "defaults.name", "Input should be a valid string")]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"items": []}, FieldError(None, "items", "must hold 1 to 5 items (got 0)")),
        ({"items": [{"image_id": "x"}] * 6}, FieldError(None, "items", "must hold 1 to 5 items (got 6)")),
        ({}, FieldError(None, "items", "is required (or a selector)")),
        ({"items": [], "selector": {"shape": "round"}}, FieldError(None, "selector.shape", "is not a known field")),
        (
            {"items": [{"image_id": _image()}], "template": {}},
            FieldError(None, "template", "needs a selector: a template describes the images it selects"),
        ),
        ({"items": {"image_id": "x"}}, FieldError(None, "items", "Input should be a valid list")),
        ({"items": [], "extra": 1}, FieldError(None, "extra", "is not a known field")),
        ([{"image_id": "x"}], FieldError(None, "body", "must be a JSON object")),
        (None, FieldError(None, "body", "must be a JSON object")),
    ],
)
def test_request_level_problems_name_the_field_and_rule(settings, payload, problem) -> None:
    error = _refusal(parse_batch, payload, settings)
    assert problem in error.errors
    assert f"{problem.field}: {problem.rule}" in error.detail


def test_single_item_uses_the_same_rules(settings) -> None:
    item = parse_item({"image_id": _image(), "kms_key": "ims/default"}, settings)
    assert item.account == "default" and item.spec.kms_key == "ims/default"
    error = _refusal(parse_item, {"image_id": _image(), "kms_key": "no spaces allowed"}, settings)
    assert error.errors == [FieldError(None, "kms_key", "must be a KMS key ID (UUID) or an alias such as ims/default")]
    assert error.detail.startswith("kms_key: must be a KMS key ID")
    unknown = _refusal(parse_item, {"image_id": _image(), "account": "staging"}, settings)
    assert unknown.errors[0].field == "account"


def test_no_accounts_configured_refuses_every_item(settings) -> None:
    bare = settings.model_copy(update={"accounts": {}, "default_account": None})
    error = _refusal(parse_batch, {"items": [{"image_id": _image()}]}, bare)
    assert error.errors == [FieldError(0, "account", "no accounts are configured on this server")]


@pytest.mark.parametrize("label", ["", " x", "a" * 65, "has space", "é", 7, ["x"]])
def test_a_bad_label_is_refused_naming_the_rule(settings, label: object) -> None:
    error = _refusal(parse_batch, {"items": [{"image_id": _image()}], "label": label}, settings)
    assert [(p.field, p.rule) for p in error.errors] == [("label", LABEL_RULE)]


def test_a_label_is_kept(settings) -> None:
    assert parse_batch({"items": [{"image_id": _image()}], "label": "rekey-2026.q1"}, settings).label == "rekey-2026.q1"


def _fields(refusal: InvalidRequest) -> set[tuple[int | None, str]]:
    return {(p.index, p.field) for p in refusal.errors}


def test_cross_region_share_and_tag_fields_are_checked_with_their_defaults(settings) -> None:
    project = "fedcba9876543210fedcba9876543210"
    good = parse_batch(
        {
            "items": [
                {"image_id": _image(), "target_region": "cn-south-1", "agency": "ims_admin_agency"},
                {"image_id": _image(), "share_with": [project], "tags": {"team": "web"}},
            ],
            "defaults": {"tags": {"campaign": "q3"}, "provenance": True},
        },
        settings,
    )
    good = good.items
    assert good[0].spec.target_region == "cn-south-1" and good[0].spec.tags == {"campaign": "q3"}
    assert good[1].spec.tags == {"campaign": "q3", "team": "web"} and good[1].spec.share_with == [project]
    bad = _refusal(
        parse_batch,
        {
            "items": [
                {"image_id": _image(), "kms_key": "ims/default"},  # defaults make it cross-region
                {"image_id": _image(), "target_region": "cn-north-4"},  # the account's own region
                {"image_id": _image(), "target_region": None, "target_project": "x", "share_with": [project]},
                {"image_id": _image(), "tags": {f"k{i}": "v" for i in range(9)}, "provenance": True},
                {"image_id": _image(), "tags": {"k" * 37: "v"}, "share_with": ["nope"]},
            ],
            "defaults": {"target_region": "cn-south-1"},
        },
        settings,
    )
    assert _fields(bad) == {(0, "kms_key"), (1, "target_region"), (3, "tags"), (4, "tags"), (4, "share_with")}
    rules = {(p.index, p.field): p.rule for p in bad.errors}
    assert "cannot be encrypted" in rules[(0, "kms_key")] and "own region (cn-north-4)" in rules[(1, "target_region")]
    assert "at most 8 tags with provenance tags on" in rules[(3, "tags")]
    assert "at most 36 characters" in rules[(4, "tags")] and "32 hex" in rules[(4, "share_with")]


def test_one_item_refused_for_each_rule_between_fields(settings) -> None:
    cases = {
        "target_project": {"target_project": "cn-south-1_apps"},
        "agency": {"agency": "ims_admin_agency"},
        "share_with": {"share_with": ["0123456789abcdef0123456789abcdef"]},  # the account's own project
    }
    for field, extra in cases.items():
        refusal = _refusal(parse_item, {"image_id": _image(), **extra}, settings)
        assert _fields(refusal) == {(None, field)}, refusal.errors
    encrypted = _refusal(parse_item, {"image_id": _image(), "kms_key": "app-key", "share_with": ["a" * 32]}, settings)
    assert _fields(encrypted) == {(None, "share_with")} and "IMG.0098" in encrypted.errors[0].rule
    assert "nothing was stored" in encrypted.detail


def test_a_template_copies_across_regions_and_shares_every_copy(settings) -> None:
    template = {"decrypt": True, "target_region": "cn-south-1", "share_with": ["a" * 32], "provenance": True}
    parsed = parse_batch({"selector": {"encrypted": True}, "template": template}, settings)
    spec = parsed.selection.template.spec(_image(), "default")
    assert (spec.target_region, spec.share_with, spec.provenance, spec.account) == (
        "cn-south-1", ["a" * 32], True, "default")  # fmt: skip


def test_a_selector_alone_is_a_batch_and_its_template_is_checked_against_the_accounts_region(settings) -> None:
    parsed = parse_batch({"selector": {"encrypted": True, "account": "prod"}, "template": {"decrypt": True}}, settings)
    assert parsed.items == [] and parsed.selection is not None
    assert (parsed.selection.account, parsed.selection.region, parsed.selection.template.decrypt) == (
        "prod", settings.accounts["prod"].region, True)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"selector": {"colour": "blue"}}, "selector.colour", "is not a known field"),
        ({"selector": {"account": "staging"}}, "selector.account", "must be one of the configured accounts"),
        ({"selector": {}, "template": {"name": "{name}" + "x" * 128}}, "template.name", "over 128 characters"),
        ({"selector": {}, "template": {"name": "{name}/copy"}}, "template.name", "break IMS's rules"),
        ({"selector": {}, "template": {"name": "{nom}"}}, "template.name", "unknown placeholder {nom}"),
        ({"selector": {}, "template": {"tags": {"k" * 37: "v"}}}, "template.tags", "at most 36 characters"),
        ({"selector": {}, "template": {"kms_key": "k", "decrypt": True}}, "template", "cannot be combined"),
        ({"selector": {"kms_key": "old-key", "encrypted": False}}, "selector", "cannot be combined"),
        ({"selector": {}, "template": {"target_region": "south"}}, "template.target_region", "region ID"),
        (
            {"selector": {}, "template": {"kms_key": "k", "target_region": "cn-south-1"}},
            "template.kms_key",
            "cannot be encrypted",
        ),
        ({"selector": {}, "template": {"kms_key": "k", "share_with": ["a" * 32]}}, "template.share_with", "IMG.0098"),
        ({"selector": {}, "template": {"target_region": "cn-north-4"}}, "template.target_region", "own region"),
    ],
)
def test_bad_selectors_and_templates_name_the_field_and_rule(settings, body: dict, field: str, rule: str) -> None:
    error = _refusal(parse_batch, body, settings)
    assert [p.field for p in error.errors] == [field]
    assert rule in error.errors[0].rule


def test_an_item_breaking_a_guardrail_refuses_the_batch_naming_the_account_and_the_guardrail(guarded) -> None:
    refusal = _refusal(
        parse_batch,
        {
            "items": [
                {"image_id": _image(), "share_with": [FRIEND]},  # allowed
                {"image_id": _image(), "share_with": [FRIEND, STRANGER]},
                {"image_id": _image(), "target_region": "cn-east-3"},
                {"image_id": _image(), "account": "locked", "share_with": [FRIEND]},
                {"image_id": _image(), "account": "locked", "target_region": "cn-south-1"},
            ],
            "defaults": {"account": "prod"},
        },
        guarded,
    )
    rules = {(p.index, p.field): p.rule for p in refusal.errors}
    assert rules == {
        (1, "share_with"): f"project {STRANGER} is not in account prod's share_projects "
        "(sharing is refused when the list is empty)",
        (2, "target_region"): "region cn-east-3 is not in account prod's copy_regions (cn-south-1)",
        (3, "share_with"): f"project {FRIEND} is not in account locked's share_projects "
        "(sharing is refused when the list is empty)",
        (4, "target_region"): "region cn-south-1 is not in account locked's copy_regions (none: copies stay in the "
        "account's region); unset, it is the regions configured under the account's regions",
    }
    assert refusal.detail == "4 of 5 items are invalid; nothing was stored"


def test_one_item_breaking_a_guardrail_is_refused_without_an_index(guarded) -> None:
    refusal = _refusal(parse_item, {"image_id": _image(), "account": "prod", "share_with": [STRANGER]}, guarded)
    assert _fields(refusal) == {(None, "share_with")} and "account prod's share_projects" in refusal.errors[0].rule


def test_the_allow_lists_let_their_projects_and_regions_through_and_a_star_lets_any() -> None:
    accounts = {
        "listed": {**ACCOUNT, "share_projects": [FRIEND], "copy_regions": ["cn-south-1", "ap-southeast-1"]},
        "star": {**ACCOUNT, "share_projects": ["*"], "copy_regions": ["*"]},
        "mapped": {**ACCOUNT, "regions": {"CN_SOUTH_1": {}}},  # copy_regions unset: the regions configured
    }
    settings = load_settings(
        redis_url="redis://127.0.0.1:1/0",
        redis_allow_no_password=True,
        api_tokens="validation-token-1",
        accounts=accounts,
    )
    items = [
        {"image_id": _image(), "account": "listed", "share_with": [FRIEND], "target_region": "ap-southeast-1"},
        {"image_id": _image(), "account": "star", "share_with": [STRANGER], "target_region": "eu-west-101"},
        {"image_id": _image(), "account": "mapped", "target_region": "cn-south-1"},
    ]
    assert len(parse_batch({"items": items}, settings).items) == 3


def test_a_template_breaking_a_guardrail_is_refused(guarded) -> None:
    cases = [
        ({"account": "prod"}, {"share_with": [STRANGER]}, "template.share_with", "account prod's share_projects"),
        ({"account": "prod"}, {"target_region": "cn-east-3"}, "template.target_region", "account prod's copy_regions"),
        # Decryption said outright: the template's decrypt, or no key for images selected as encrypted.
        ({"account": "locked"}, {"decrypt": True}, "template.decrypt", "account locked's allow_decrypt is false"),
        ({"account": "locked", "encrypted": True}, {}, "template.kms_key", "account locked's allow_decrypt is false"),
        ({"account": "locked", "kms_key": "old"}, {}, "template.kms_key", "allow_decrypt"),
    ]
    for selector, template, field, rule in cases:
        refusal = _refusal(parse_batch, {"selector": selector, "template": template}, guarded)
        assert [(p.field, rule in p.rule) for p in refusal.errors] == [(field, True)], (selector, template)
    # Re-keying, or selecting images that may or may not be encrypted, says no decryption: each copy is judged by
    # the worker once its source is read.
    for selector, template in [({"encrypted": True}, {"kms_key": "new"}), ({}, {})]:
        assert parse_batch({"selector": {"account": "locked", **selector}, "template": template}, guarded).selection
    # Where decryption is allowed (prod), the same template passes.
    assert parse_batch({"selector": {"account": "prod"}, "template": {"decrypt": True}}, guarded).selection


@pytest.fixture
def receivers():
    """``golden`` may share with ``team-a`` (cn-north-4) and ``south`` (cn-south-1); ``team-b`` is configured but
    not in its share_projects."""
    team = {"access_key": "AKT", "secret_key": "SKT"}
    return load_settings(
        redis_url="redis://127.0.0.1:1/0",
        redis_allow_no_password=True,  # never reached
        api_tokens="validation-token-1",
        accounts={
            "golden": {**ACCOUNT, "share_projects": [FRIEND, "d" * 32], "copy_regions": ["cn-south-1"]},
            "team-a": {**team, "project_id": FRIEND},
            "team-b": {**team, "project_id": STRANGER},
            "south": {**team, "project_id": "d" * 32, "region": "cn-south-1"},
        },
    )


def test_a_distribution_is_kept_with_its_receivers_and_acts_in_their_accounts(receivers) -> None:
    distribute = [
        {"account": "team-a", "key": "ims/team-a", "tags": {"team": "a"}},
        {"account": "south", "region": "cn-south-1"},
    ]
    [item] = parse_batch(
        {"items": [{"image_id": _image(), "distribute": distribute}], "defaults": {"account": "golden"}}, receivers
    ).items
    assert [r.model_dump(exclude_none=True) for r in item.spec.distribute] == distribute
    assert item.accounts == ["golden", "team-a", "south"]


def test_each_bad_receiver_is_refused_naming_its_field_and_rule(receivers) -> None:
    refusal = _refusal(
        parse_batch,
        {
            "items": [
                {"image_id": _image(), "distribute": [{"account": "team-b"}, {"account": "nowhere"}]},
                {"image_id": _image(), "distribute": [{"account": "team-a"}, {"account": "team-a"}]},
                {"image_id": _image(), "distribute": [{"account": "team-a", "key": "no key!"}]},
                {"image_id": _image(), "kms_key": "ims/default", "distribute": [{"account": "team-a"}]},
                {"image_id": _image(), "distribute": [{"account": "south"}]},
                {"image_id": _image(), "distribute": []},
                {"image_id": _image(), "withdraw_share": True},
            ],
            "defaults": {"account": "golden"},
        },
        receivers,
    )
    rules = {(p.index, p.field): p.rule for p in refusal.errors}
    assert rules == {
        (0, "distribute.0"): f"project {STRANGER} is not in account golden's share_projects "
        "(sharing is refused when the list is empty)",
        (0, "distribute.1.account"): "must be one of the configured accounts: golden, south, team-a, team-b",
        (1, "distribute"): "must not list a receiver twice (account team-a)",
        (2, "distribute.0.key"): "must be a KMS key ID (UUID) or an alias such as ims/default",
        (3, "kms_key"): "a distribution shares the copy, which must be unencrypted (IMG.0098): leave kms_key out and "
        "give each receiver its key",
        (4, "distribute.0.region"): "account south's project is in region cn-south-1, not cn-north-4",
        (5, "distribute"): "must list 1 to 128 receivers, IMS's member limit (got 0)",
        (6, "withdraw_share"): "is only for a distribution: give distribute too",
    }


def test_a_templates_receivers_are_checked_by_an_items_rules_and_its_selection_acts_in_their_accounts(
    receivers,
) -> None:
    distribute = [{"account": "team-a", "key": "ims/team-a"}, {"account": "south", "region": "cn-south-1"}]
    selection = parse_batch(
        {"selector": {"account": "golden"}, "template": {"distribute": distribute, "withdraw_share": True}}, receivers
    ).selection
    assert selection is not None and selection.accounts == ["golden", "team-a", "south"]
    assert [r.model_dump(exclude_none=True) for r in selection.template.distribute] == distribute
    # Each bad distribution, as an item's field and as a template's: the same field and rule, under "template.".
    for options in [
        {"distribute": [{"account": "team-b"}, {"account": "nowhere"}]},
        {"distribute": [{"account": "team-a"}, {"account": "team-a"}]},
        {"distribute": [{"account": "team-a", "key": "no key!"}]},
        {"kms_key": "ims/default", "distribute": [{"account": "team-a"}]},
        {"target_region": "cn-south-1", "distribute": [{"account": "south", "region": "cn-south-1"}]},
        {"distribute": [{"account": "south"}]},
        {"distribute": [{"account": "golden"}]},
        {"withdraw_share": True},
    ]:
        item = _refusal(parse_batch, {"items": [{"image_id": _image(), "account": "golden", **options}]}, receivers)
        template = _refusal(parse_batch, {"selector": {"account": "golden"}, "template": options}, receivers)
        as_item = sorted((f"template.{p.field}", p.rule) for p in item.errors)
        assert as_item and sorted((p.field, p.rule) for p in template.errors) == as_item, options
