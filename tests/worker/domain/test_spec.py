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
