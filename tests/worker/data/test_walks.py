"""An admit pass's listing walk, kept for its chunks: records read back as listed, a position, a fresh start."""

from __future__ import annotations

import pytest

from worker.data import DataLayer
from worker.data.walks import TTL
from worker.ims.models import Image


@pytest.fixture
def data(redis_server) -> DataLayer:
    return redis_server.data()


def _image(n: int) -> Image:
    return Image.model_validate({"id": f"img-{n}", "name": f"n{n}", "status": "active", "__image_size": "2048"})


def test_a_walk_keeps_the_records_it_listed_and_where_it_goes_on(data: DataLayer) -> None:
    assert data.walks.known("b1", "a", {"img-0"}) == ({}, None, False)  # not begun: from the first page
    data.walks.record("b1", "a", [_image(0), _image(1)], "img-1")
    found, marker, ended = data.walks.known("b1", "a", {"img-1", "img-9"})
    assert found == {"img-1": _image(1)} and found["img-1"].size_bytes == 2048  # as listed, `__*` fields too
    assert (marker, ended) == ("img-1", False)
    data.walks.record("b1", "a", [_image(2)], None)  # a short page: the listing's last
    assert data.walks.known("b1", "a", {"img-2"}) == ({"img-2": _image(2)}, None, True)
    assert data.walks.known("b1", "other", {"img-2"}) == ({}, None, False)  # each account its own walk
    assert 0 < data._client.ttl(data.keys.walked("b1", "a")) <= TTL  # never older than its pass


def test_a_new_pass_forgets_every_accounts_walk_of_the_batch_only(data: DataLayer) -> None:
    for batch, account in (("b1", "a"), ("b1", "c"), ("b2", "a")):
        data.walks.record(batch, account, [_image(0)], None)
    data.walks.forget("b1")
    assert data.walks.known("b1", "a", {"img-0"}) == ({}, None, False)
    assert data.walks.known("b1", "c", {"img-0"}) == ({}, None, False)
    assert data.walks.known("b2", "a", {"img-0"})[0] == {"img-0": _image(0)}
