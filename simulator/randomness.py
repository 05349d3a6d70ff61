"""All randomness comes from one seed, split into independent streams by purpose.

Separate streams keep outcomes reproducible when the number of calls varies: polling a job ten times or
twenty must not change which copy fails or which request gets a fault.
"""

from __future__ import annotations

import random
import uuid


class SeededStreams:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.faults = self._stream("faults")  # one fixed set of draws per API request
        self.jobs = self._stream("jobs")  # fail decisions, one fixed set per accepted copy
        self.ids = self._stream("ids")  # job and image IDs
        self.request_ids = self._stream("request-ids")
        self.tokens = self._stream("tokens")
        # Images added by POST /_sim/images and by the schedule: names, IDs and keys, apart from the copies' IDs
        # (and from each other, so when a test asks for images does not change the scheduled ones).
        self.requested_images = self._stream("requested-images")
        self.scheduled_images = self._stream("scheduled-images")

    def _stream(self, purpose: str) -> random.Random:
        # A str seed is hashed with SHA-512, so it does not depend on PYTHONHASHSEED.
        return random.Random(f"{self.seed}/{purpose}")

    def job_id(self) -> str:
        return f"{self.ids.getrandbits(128):032x}"

    def image_id(self) -> str:
        return random_uuid(self.ids)

    def request_id(self) -> str:
        return f"{self.request_ids.getrandbits(128):032x}"

    def token(self) -> str:
        # Real tokens are long base64 blobs starting "MII"; clients must treat them as opaque.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return "MII" + "".join(self.tokens.choice(alphabet) for _ in range(253))


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
