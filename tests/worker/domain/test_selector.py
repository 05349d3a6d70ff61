"""Selectors and templates: what IMS is asked to filter, what the worker checks on each record, and templates
that cannot give valid names refused before any image is listed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from worker.domain.selector import GIB, Selector, Template, batch_day, render_name
from worker.ims.models import Image

KEY = "18d799fa-85ca-5572-89ff-1fa5a4c2c528"


def _image(**fields: object) -> Image:
    base = {"id": "2122f6d9-292d-5b9f-9087-700212e3cdad", "name": "web-01", "status": "active",
            "__imagetype": "private", "__image_size": str(2 * GIB), "created_at": "2024-05-01T10:00:00Z"}  # fmt: skip
    return Image.model_validate({**base, **fields})


def test_listing_filters_are_the_documented_ones_and_private_by_default() -> None:
    selector = Selector(
        status="active",
        os_type="Linux",
        tag="team=db",
        created_after=datetime(2024, 1, 1, 12, 0, 0, 500_000),
        created_before=datetime(2024, 6, 1),
        encrypted=True,
        name_prefix="web-",
    )
    assert selector.listing_filters(KEY) == {
        "status": "active",
        "__imagetype": "private",
        "__os_type": "Linux",
        "tag": "team=db",
        "__system__cmkid": KEY,
        "created_at": "gte:2024-01-01T12:00:00Z",  # one condition; the other end is the worker's
    }
    before = Selector(created_before=datetime(2024, 6, 1)).listing_filters(None)
    assert before["created_at"] == "lte:2024-06-01T00:00:00Z"


@pytest.mark.parametrize(
    ("selector", "fields", "matched"),
    [
        (Selector(encrypted=True), {"__system__cmkid": KEY}, True),
        (Selector(encrypted=True), {}, False),
        (Selector(encrypted=False), {"__system__cmkid": KEY}, False),
        (Selector(fast_create=False), {"__lazyloading": "false"}, True),
        (Selector(fast_create=False), {"__lazyloading": "True"}, False),
        (Selector(name_prefix="web-"), {"name": "db-01"}, False),
        (Selector(min_size_gb=2, max_size_gb=2), {}, True),
        (Selector(max_size_gb=1.5), {}, False),
        (Selector(min_size_gb=1), {"__image_size": ""}, False),
        (Selector(created_after=datetime(2024, 5, 1, 10, 0, 1)), {}, False),
        (Selector(created_before=datetime(2024, 5, 1, 10, 0, 0)), {}, False),
        (Selector(created_before=datetime(2024, 5, 1, 10, 0, 1, tzinfo=timezone.utc)), {}, True),
        (Selector(status="active"), {"status": "saving"}, False),
        (Selector(), {"__imagetype": "gold"}, False),
        (Selector(enterprise_project_id="0"), {}, True),
    ],
)
def test_the_worker_checks_every_filter_the_record_shows(selector: Selector, fields: dict, matched: bool) -> None:
    assert selector.matches(_image(**fields), None) is matched


def test_a_key_filter_matches_only_that_key() -> None:
    assert Selector(kms_key="old-key").matches(_image(__system__cmkid=KEY), KEY)
    assert not Selector(kms_key="old-key").matches(_image(__system__cmkid="another"), KEY)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"unknown_filter": 1}, "Extra inputs are not permitted"),
        ({"encrypted": False, "kms_key": "old-key"}, "cannot be combined with encrypted: false"),
        ({"min_size_gb": 5, "max_size_gb": 1}, "min_size_gb must not exceed max_size_gb"),
        ({"created_after": "2024-02-01", "created_before": "2024-01-01"}, "created_after must be before"),
        ({"tag": "no-equals"}, "must be key=value"),
        ({"status": "ready"}, "Input should be"),
        ({"enterprise_project_id": "7"}, "all_granted_eps"),
    ],
)
def test_bad_selectors_are_refused(fields: dict, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        Selector(**fields)


@pytest.mark.parametrize(
    ("pattern", "rule"),
    [
        ("{name}-{flavour}", "unknown placeholder {flavour}"),
        ("{name}-}", "unmatched"),
        ("plain-copy", "must contain {name} or {id8}"),
        ("x" * 120 + "-{region}-{name}", "over 128 characters"),
        ("{name}<copy>", "break IMS's rules"),
        (" {name}", "break IMS's rules"),
    ],
)
def test_impossible_name_patterns_are_refused(pattern: str, rule: str) -> None:
    problem = Template(name=pattern).name_problem("cn-north-4")
    assert problem is not None and rule in problem


def test_a_template_makes_items_with_placeholders_filled_and_long_names_cut() -> None:
    template = Template(name="{name}-{region}-{id8}-{date}", kms_key="app-key", tags={"campaign": "rekey"})
    assert template.name_problem("cn-north-4") is None
    day = batch_day(datetime(2026, 11, 28, 23, 59, tzinfo=timezone.utc).timestamp())
    spec = template.item(_image(), "default", "cn-north-4", day)
    assert spec.name == "web-01-cn-north-4-2122f6d9-20261128"
    assert (spec.kms_key, spec.tags, spec.account, spec.image_id) == ("app-key", {"campaign": "rekey"}, "default",
                                                                     _image().id)  # fmt: skip
    long = render_name("{name}-plain", "n" * 128, "0123abcd", "cn-north-4", day)
    assert long == "n" * 122 + "-plain" and len(long) == 128
    assert Template().item(_image(), "default", "cn-north-4", day).name is None  # the default copy name


def test_decrypt_and_a_key_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="cannot be combined with kms_key"):
        Template(decrypt=True, kms_key="app-key")
    assert Template(decrypt=True).item(_image(), "default", "r", "d").kms_key is None


SOURCE = "0123abcd-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("pattern", "name", "source_name", "mine"),
    [
        ("{name}-copy", "web-v3-copy", "web-v3", True),
        ("{name}-copy", "web-v3-copy", "db-v1", False),  # another source's name
        ("{name}-copy", "web-v3-copy", None, True),  # the source's name unknown: the pattern decides
        ("{name}-copy", "web-v3-plain", None, False),
        ("{name}-{date}-{id8}", "web-20261128-0123abcd", "web", True),  # made on any day
        ("{name}-{date}-{id8}", "web-20261128-ffffffff", "web", False),  # another source's ID
        (None, "copy_cn-north-4_web", "web", True),  # the console's default
        ("{region}.{name}", "cn-north-4xweb", None, False),  # literal text is literal
    ],
)
def test_a_template_knows_the_names_it_gives_a_sources_copy(
    pattern: str | None, name: str, source_name: str | None, mine: bool
) -> None:
    names = Template(name=pattern).copy_name("cn-north-4", SOURCE, source_name)
    assert bool(names.fullmatch(name)) is mine


def test_a_long_source_name_is_cut_in_the_names_known_as_in_the_names_given() -> None:
    template = Template(name="{name}-copy")
    given = render_name("{name}-copy", "x" * 200, SOURCE[:8], "cn-north-4", "20261128")
    assert template.copy_name("cn-north-4", SOURCE, "x" * 200).fullmatch(given)


def test_a_copy_names_its_source_by_its_data_origin() -> None:
    assert Image(id="c", __data_origin=f"image,cn-north-4,{SOURCE}").copied_from == SOURCE
    assert Image(id="i", __data_origin="instance,ecs-1").copied_from is None
    assert Image(id="p").copied_from is None


def test_a_templates_receivers_reach_each_item_it_makes() -> None:
    receivers = [{"account": "team-a", "key": "ims/team-a", "tags": {"team": "a"}}, {"account": "team-b"}]
    template = Template(distribute=receivers, withdraw_share=True)
    item = template.item(_image(), "golden", "cn-north-4", "20261128")
    assert [r.model_dump(exclude_none=True) for r in item.distribute or ()] == receivers
    assert item.withdraw_share is True and item.account == "golden"
