"""The running simulator: configuration, state and the services every route uses."""

from __future__ import annotations

import time
from collections.abc import Callable

from simulator.auth import Authenticator
from simulator.catalog.loader import load_catalog, project_catalog
from simulator.catalog.records import domain_id_for
from simulator.config import FaultKnobs, SimConfig
from simulator.errors import throttled
from simulator.faults import FaultInjector
from simulator.randomness import SeededStreams
from simulator.ratelimit import TokenBucket
from simulator.replication import Replicator
from simulator.state import Project, SimState
from simulator.stats import Stats
from simulator.tokens import TokenStore


class Simulator:
    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.started_at = clock()
        self.knobs = FaultKnobs(**config.knobs.as_dict())
        self.streams = SeededStreams(config.seed)
        self.domain_id = domain_id_for(config.iam_domain)
        self.state = SimState(config.region, self._projects())
        self.tokens = TokenStore(self.streams, config.token_ttl)
        self.auth = Authenticator({config.access_key: config.secret_key}, self.tokens, config.lockout_seconds)
        self.faults = FaultInjector(self.knobs, self.streams.faults)
        self.stats = Stats()
        self.replicator = Replicator(self.state, self.streams, self.knobs, copy_seconds=config.copy_seconds,
                                     copy_seconds_per_gb=config.copy_seconds_per_gb)
        self._buckets: dict[str, TokenBucket] = {}

    def _projects(self) -> list[Project]:
        source = load_catalog(self.config.catalog)
        projects = []
        for index, project_id in enumerate(self.config.project_ids):
            # The first project is the region's default project, named after the region (as on Huawei Cloud).
            name = self.config.region if index == 0 else f"{self.config.region}_{index + 1}"
            project = Project(project_id, name, self.config.job_limit, self.config.image_quota)
            catalog = project_catalog(source, project_id, self.config.region, self.domain_id)
            for image in catalog.images:
                project.add_image(image)
            project.keys = {key["key_id"]: key for key in catalog.keys}
            projects.append(project)
        return projects

    def admit(self, project_id: str) -> None:
        """The gateway's per-project rate limit; raise 429 APIGW.0308 above it."""
        rate = self.knobs.request_rate
        if rate <= 0:
            return
        bucket = self._buckets.get(project_id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[project_id] = TokenBucket(rate)
        if not bucket.take():
            self.faults.count("rate_limited")
            raise throttled(rate)
