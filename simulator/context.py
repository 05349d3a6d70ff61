"""The running simulator: configuration, state and the services every route uses."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from simulator.auth import Authenticator
from simulator.catalog.loader import load_catalog, project_catalog
from simulator.catalog.records import domain_id_for
from simulator.config import FaultKnobs, RegionSpec, SimConfig
from simulator.errors import throttled
from simulator.faults import FaultInjector
from simulator.newimages import NewImages
from simulator.outage import Outages
from simulator.randomness import SeededStreams
from simulator.ratelimit import TokenBucket
from simulator.replication import Replicator
from simulator.sharing import Sharing
from simulator.state import Project, SimState
from simulator.stats import Stats
from simulator.tokens import TokenStore

# A Huawei Cloud host names its region second: ims.cn-north-4.myhuaweicloud.com, kms.<region>..., iam.<region>...
REGIONAL_HOST = re.compile(r"(?P<service>[a-z0-9-]+)\.(?P<region>[a-z0-9-]+)\.(?P<domain>[^:]+)(?P<port>:\d+)?")


class Simulator:
    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.started_at = clock()
        self.knobs = FaultKnobs(**config.knobs.as_dict())
        self.streams = SeededStreams(config.seed)
        self.domain_id = domain_id_for(config.iam_domain)
        self.state = SimState(self._regions(), config.agency_specs())
        self.tokens = TokenStore(self.streams, config.token_ttl)
        self.auth = Authenticator({config.access_key: config.secret_key}, self.tokens, config.lockout_seconds)
        self.faults = FaultInjector(self.knobs, self.streams.faults)
        self.outages = Outages(clock)
        self.stats = Stats()
        self.replicator = Replicator(self.state, self.streams, self.knobs, config)
        self.sharing = Sharing(self.state, self.streams, config)
        self.new_images = NewImages(self.streams, config.new_images_every, config.new_images_count, self.started_at)
        # Scheduled images go to the home project (the first region's default), brought in lazily by the tick.
        self.state.tick_hooks.append(lambda now: self.new_images.tick(self.state.first_project, now))
        self._buckets: dict[str, TokenBucket] = {}
        # The port each region answers on, once the server has bound them (see bind).
        self.ports: dict[str, int] = {spec.name: spec.port for spec in config.regions}

    def _regions(self) -> dict[str, list[Project]]:
        source = load_catalog(self.config.catalog)
        return {spec.name: self._projects(spec, source) for spec in self.config.regions}

    def _projects(self, spec: RegionSpec, source: dict[str, Any]) -> list[Project]:
        projects = []
        for index, project_id in enumerate(spec.project_ids):
            # The first project is the region's default project, named after the region (as on Huawei Cloud).
            name = spec.name if index == 0 else f"{spec.name}_{index + 1}"
            project = Project(
                project_id,
                name,
                self.config.job_limit,
                self.config.image_quota,
                region=spec.name,
                cross_region_job_limit=self.config.cross_region_job_limit,
            )
            catalog = project_catalog(source, project_id, spec.name, self.domain_id)
            for image in catalog.images:
                project.add_image(image)
            project.keys = {key["key_id"]: key for key in catalog.keys}
            projects.append(project)
        return projects

    def bind(self, ports: Mapping[str, int]) -> None:
        """Record the ports the server listens on, by region (a port 0 asked for becomes the one obtained)."""
        self.ports.update(ports)

    def region_of(self, host_header: str | None, local_port: int | None) -> str:
        """The region a request addresses: the one its Host names (``ims.<region>.…``), else the one whose port
        it arrived on, else the first region."""
        match = REGIONAL_HOST.fullmatch(host_header or "")
        if match and match["region"] in self.state.regions:
            return match["region"]
        for region, port in self.ports.items():
            if port and port == local_port:
                return region
        return self.state.region

    def endpoints(self, host_header: str, scheme: str = "http") -> dict[str, str]:
        """Each region's endpoint as a client that reached this simulator with ``host_header`` would address it:
        by host name if it used a regional one (``ims.<region>.…``), else at the same host on each region's port."""
        match = REGIONAL_HOST.fullmatch(host_header)
        if match and match["region"] in self.state.regions:
            return {
                region: f"{scheme}://{match['service']}.{region}.{match['domain']}{match['port'] or ''}"
                for region in self.state.regions
            }
        hostname = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return {region: f"{scheme}://{hostname}:{port}" for region, port in self.ports.items()}

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
