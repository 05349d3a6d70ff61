"""A batch's walk of each account's private-image listing, shared by the chunks of its admit pass.

An admit chunk validates its items from listing pages (``worker.steps.validate``). A big batch's items lie all
over the listing, so each chunk walked it again from the first page: the 20 chunks of a 10,000-item batch in a
10,000-image project fetched about 200 pages, two seconds a chunk with IMS 150 ms away. The pages a pass has walked
are kept instead (each image's record, and where the walk stopped); the next chunk looks there first, then walks on
from where the last one stopped. The first chunk of a pass (cursor 0: a new batch, the pass after an outage, a
user's retry) starts afresh, the last one forgets the walk, and the keys expire ``TTL`` seconds after the last page
in case that chunk is lost: a record is never older than its pass, and takes Redis memory only while it runs.
"""

from __future__ import annotations

import redis

from worker.data.keyspace import Keyspace
from worker.ims.models import Image

TTL = 120  # seconds a pass's pages are kept after its last one: an admit chain takes a chunk every second or two
ENDED = ""  # the position of a walk that reached the listing's last page


class ListingWalks:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys

    def forget(self, batch_id: str) -> None:
        """A new pass: every account's walk for the batch starts again from the first page."""
        accounts = self._redis.hkeys(self._keys.walk(batch_id))
        self._redis.delete(self._keys.walk(batch_id), *(self._keys.walked(batch_id, a) for a in accounts))

    def known(self, batch_id: str, account: str, image_ids: set[str]) -> tuple[dict[str, Image], str | None, bool]:
        """The images among ``image_ids`` that the pass's walk has seen, the marker to walk on from (None: the
        first page) and whether the walk has reached the listing's end."""
        pipe = self._redis.pipeline(transaction=False)
        wanted = sorted(image_ids)
        pipe.hget(self._keys.walk(batch_id), account)
        if wanted:
            pipe.hmget(self._keys.walked(batch_id, account), wanted)
        answers = pipe.execute()
        position, records = answers[0], answers[1] if wanted else []
        found = {i: Image.model_validate_json(r) for i, r in zip(wanted, records, strict=True) if r is not None}
        return found, position or None, position == ENDED

    def record(self, batch_id: str, account: str, page: list[Image], marker: str | None) -> None:
        """A page walked; ``marker`` is where the walk goes on (None: that was the last page)."""
        pipe = self._redis.pipeline(transaction=True)
        walked, walk = self._keys.walked(batch_id, account), self._keys.walk(batch_id)
        if page:
            pipe.hset(walked, mapping={image.id: image.model_dump_json(by_alias=True) for image in page})
        pipe.hset(walk, account, ENDED if marker is None else marker)
        pipe.expire(walked, TTL)
        pipe.expire(walk, TTL)
        pipe.execute()
