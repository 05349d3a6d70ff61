"""IMS's naming rules and the default copy name."""

from __future__ import annotations

import pytest

from worker.domain.naming import default_copy_name, description_problem, is_uuid, key_ref_problem, name_problem


@pytest.mark.parametrize("name", ["copy_cn-north-4_web", "a", "x" * 128, "镜像 copy.1-2_3"])
def test_good_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "x" * 129, " lead", "trail ", "bad/slash", "semi;colon", "tab\there"])
def test_bad_names(name: str) -> None:
    assert name_problem(name)


def test_default_copy_name_follows_the_console_and_fits_128() -> None:
    assert default_copy_name("cn-north-4", "web") == "copy_cn-north-4_web"
    long = default_copy_name("cn-north-4", "y" * 200)
    assert len(long) == 128 and name_problem(long) is None
    assert not default_copy_name("cn-north-4", "a" * 108 + " b").endswith(" ")


def test_descriptions() -> None:
    assert description_problem("ok, fine: 1.0") is None
    assert description_problem("x" * 1025)
    for bad in ("a\rb", "a\nb", "<b>", "a>b"):
        assert description_problem(bad)


@pytest.mark.parametrize(
    "check",
    [name_problem, description_problem, key_ref_problem],
)
def test_no_rule_lets_a_trailing_line_feed_through(check) -> None:
    # ``$`` matches before a final "\n": every pattern must be anchored with fullmatch.
    for good in ("web-golden", "ims/default"):
        if check(good) is None:
            assert check(good + "\n"), (check.__name__, good)


def test_ids_are_whole_uuids() -> None:
    uuid = "bd66288c-9081-460a-8227-4cbd0c814cb4"
    assert is_uuid(uuid) and is_uuid(uuid.upper())
    assert not any(is_uuid(bad) for bad in (uuid + "\n", uuid + "0", " " + uuid, uuid[:-1]))


def test_key_references() -> None:
    assert key_ref_problem("ims/default") is None
    assert key_ref_problem("bd66288c-9081-460a-8227-4cbd0c814cb4") is None
    assert key_ref_problem("no spaces please")
