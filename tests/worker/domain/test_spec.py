"""The item spec: syntax checks and batch defaults."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from worker.domain.spec import ItemOptions, ItemSpec


def test_image_id_is_normalised_to_lower_case() -> None:
    image = str(uuid.uuid4()).upper()
    assert ItemSpec(image_id=image).image_id == image.lower()


@pytest.mark.parametrize(
    "fields",
    [
        {"image_id": "not-a-uuid"},
        {"name": " padded"},
        {"description": "<script>"},
        {"kms_key": "has space"},
        {"enterprise_project_id": "7"},
        {"account": "Upper"},
        {"unknown": "field"},
    ],
)
def test_bad_fields_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        ItemSpec(**{"image_id": str(uuid.uuid4()), **fields})


def test_defaults_fill_only_what_the_item_leaves_out() -> None:
    defaults = ItemOptions(kms_key="ims/default", description="bulk", name="shared")
    item = ItemSpec(image_id=str(uuid.uuid4()), name="mine").with_defaults(defaults)
    assert (item.name, item.kms_key, item.description) == ("mine", "ims/default", "bulk")
    assert ItemSpec(image_id=str(uuid.uuid4())).with_defaults(None).kms_key is None


@pytest.mark.parametrize(
    ("tags", "rule"),
    [
        ({f"k{i}": "v" for i in range(11)}, "at most 10 tags"),
        ({"k" * 37: "v"}, "at most 36 characters"),
        ({"env": "v" * 44}, "at most 43 characters"),
        ({" ": "v"}, "empty or blank"),
    ],
)
def test_tags_over_ims_limits_are_refused_naming_the_rule(tags: dict, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        ItemSpec(image_id=str(uuid.uuid4()), tags=tags)


def test_tags_at_the_limits_are_accepted_and_defaults_fill_them() -> None:
    tags = {f"{i:02d}" + "k" * 34: "v" * 43 for i in range(10)}
    assert ItemSpec(image_id=str(uuid.uuid4()), tags=tags).tags == tags
    filled = ItemSpec(image_id=str(uuid.uuid4())).with_defaults(ItemOptions(tags={"team": "db"}))
    assert filled.tags == {"team": "db"}
