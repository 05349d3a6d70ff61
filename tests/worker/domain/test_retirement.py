"""Which copies a retention rule retires: exactly ``keep_last`` per lineage by their sources' creation time, ties
broken by source ID, ``keep_for`` by the source's age, either rule keeping; the lineage a name or a tag gives; and
the sources a run would not copy because the rule would retire their copies at once."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from worker.domain.naming import TAG_VALUE_MAX
from worker.domain.retirement import (
    Copy,
    Retention,
    default_lineage,
    kept_sources,
    lineage_tags,
    parse_born,
    ranking,
    retired,
    source_lineage,
    tag_value,
)

DAY = 86_400.0
NOW = 100 * DAY


def _copy(source: str, lineage: str, born_days_ago: float, image_id: str | None = None) -> Copy:
    return Copy(image_id or f"copy-of-{source}", source, lineage, NOW - born_days_ago * DAY)


def _ids(copies: list[Copy]) -> list[str]:
    return [c.source for c in copies]


def test_exactly_keep_last_copies_are_kept_per_lineage_newest_source_first() -> None:
    web = [_copy(f"web{n}", "web", 10 - n) for n in range(1, 6)]  # web5 is the newest version
    db = [_copy("db1", "db", 50), _copy("db2", "db", 40)]
    rule = Retention(keep_last=2, action="delete")
    assert _ids(retired(web + db, rule, NOW)) == ["web1", "web2", "web3"]  # db keeps both; oldest first
    assert _ids(retired(list(reversed(web)), rule, NOW)) == ["web1", "web2", "web3"]  # listing order is no matter


def test_order_is_the_sources_creation_not_the_copies() -> None:
    # A catch-up run copies old versions after new ones: the copy of v1 may be the newest image, still v1 goes.
    old, new = Copy("made-last", "v1", "app", NOW - 9 * DAY), Copy("made-first", "v2", "app", NOW - 1 * DAY)
    assert [c.image_id for c in retired([new, old], Retention(keep_last=1), NOW)] == ["made-last"]


def test_ties_in_creation_time_are_broken_by_source_id_the_same_way_every_time() -> None:
    twins = [_copy(source, "app", 3) for source in ("b", "c", "a")]
    for order in (twins, twins[::-1], twins[1:] + twins[:1]):
        assert _ids(retired(order, Retention(keep_last=2), NOW)) == ["a"]


def test_keep_for_keeps_by_the_sources_age_and_either_rule_keeps() -> None:
    copies = [_copy("a", "app", 30), _copy("b", "app", 20), _copy("c", "app", 2), _copy("d", "app", 1)]
    assert _ids(retired(copies, Retention(keep_for=int(7 * DAY)), NOW)) == ["a", "b"]
    assert _ids(retired(copies, Retention(keep_for=int(25 * DAY), keep_last=1), NOW)) == ["a"]
    assert _ids(retired(copies, Retention(keep_for=int(7 * DAY), keep_last=3), NOW)) == ["a"]


def test_a_run_copies_only_sources_whose_copies_the_rule_would_keep() -> None:
    rule = Retention(keep_last=2, action="delete")
    copies = [_copy("v3", "web", 3), _copy("v4", "web", 2)]
    # v2's copy was retired: v2 still matches the selector, and is not copied again; v5 is new and is.
    candidates = [_copy("v2", "web", 4, "v2"), _copy("v5", "web", 1, "v5"), _copy("v3", "web", 3, "v3")]
    assert kept_sources(rule, candidates, copies, NOW) == {"v5"}  # v3 is copied already: not a new copy
    # A catch-up: none copied yet, the newest two of each lineage are.
    fresh = [_copy(f"v{n}", "web", 10 - n, f"v{n}") for n in range(1, 5)] + [_copy("x1", "db", 50, "x1")]
    assert kept_sources(rule, fresh, [], NOW) == {"v3", "v4", "x1"}
    assert kept_sources(Retention(keep_for=int(6.5 * DAY)), fresh, [], NOW) == {"v4"}  # born 6 days ago


@pytest.mark.parametrize(
    ("name", "lineage"),
    [
        ("golden-web-v7", "golden-web"),
        ("golden-web-v12", "golden-web"),
        ("ubuntu-22.04-20261201", "ubuntu"),
        ("base_api_2026-12-01", "base_api"),
        ("app.1.4.2", "app"),
        ("nightly 42", "nightly"),
        ("v3", "v3"),  # nothing would be left: the whole name
        ("web-copy", "web-copy"),
    ],
)
def test_the_default_lineage_is_the_name_without_trailing_versions_and_dates(name: str, lineage: str) -> None:
    assert default_lineage(name) == lineage


def test_a_lineage_tag_on_the_source_wins_and_every_lineage_fits_a_tag_value() -> None:
    assert source_lineage("golden-web-v7", "family-a") == "family-a"
    assert source_lineage("golden-web-v7", None) == "golden-web"
    long_a, long_b = "a" * 60 + "-x", "a" * 60 + "-y"
    assert len(tag_value(long_a)) == TAG_VALUE_MAX and tag_value(long_a) != tag_value(long_b)
    assert tag_value(tag_value(long_a)) == tag_value(long_a)  # what a copy holds reads back as the same lineage
    assert tag_value("web server/α") == "web-server-"


def test_the_sources_creation_time_reads_back_from_its_tag() -> None:
    born = datetime(2026, 12, 1, 10, 15, 30, tzinfo=timezone.utc)
    tags = lineage_tags("web", born)
    assert tags == {"imsrep_lineage": "web", "imsrep_source_created": "20261201T101530Z"}
    assert parse_born(tags["imsrep_source_created"]) == born.timestamp()
    assert parse_born("garbage") is None and parse_born(None) is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({}, "give keep_last, keep_for or both"),
        ({"keep_last": 0}, "greater than or equal to 1"),
        ({"keep_for": 59}, "greater than or equal to 60"),
        ({"keep_last": 1, "action": "purge"}, "'report' or 'delete'"),
    ],
)
def test_a_rule_must_keep_something_and_say_what_to_do(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Retention.model_validate(rule)
    assert Retention(keep_last=1).action.value == "report" and Retention(keep_last=1).delete_shared is False


def test_a_runs_pages_judge_by_the_newest_copies_alone_as_by_all_of_them() -> None:
    rule = Retention(keep_last=2)
    copies = [_copy(f"w{n}", "web", 20 - n) for n in range(6)] + [_copy("d1", "db", 5)]
    ranked = ranking(copies, rule)
    assert sorted(_ids(ranked)) == ["d1", "w4", "w5"]  # the newest two per lineage (db has one)
    assert [Copy.of_rank(c.ranked()).rank for c in ranked] == [c.rank for c in ranked]  # as Redis keeps them
    candidates = [_copy(s, "web", age, s) for s, age in (("new", 1), ("mid", 15.5), ("old", 30))]
    assert kept_sources(rule, candidates, ranked, NOW) == kept_sources(rule, candidates, copies, NOW) == {"new"}
    assert ranking(copies, Retention(keep_for=60)) == []  # only age counts: no copy decides
