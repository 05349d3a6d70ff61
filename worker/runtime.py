"""The per-process pieces a worker builds once: Redis connections, one ImsClient per account (and per cross-region
destination of an account, all sharing one HTTP connection pool), the StepContext.

Built when each pool process starts (``worker.tasks``; never inherited across a fork: sockets must not be shared),
with secrets read only from the settings.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from config.settings import AccountSettings, CredentialsSource, Settings
from worker.behind import Behind
from worker.bundles import SIZE
from worker.data import DataLayer, open_data_layer, redis_target
from worker.ims.client import ImsClient, shared_http
from worker.ims.credentials import MetadataCredentials
from worker.ims.roundtrip import RoundTrip
from worker.ratelimit import RateLimitHooks
from worker.steps import StepContext


class AccountClients:
    """One ImsClient per configured account, built on first use and reused; each request takes a token first."""

    def __init__(self, settings: Settings, data: DataLayer, round_trip: RoundTrip | None = None) -> None:
        self.settings = settings
        self.data = data
        self.round_trip = round_trip or RoundTrip()  # every account's calls: how far the cloud is
        self._clients: dict[str, ImsClient] = {}
        # One reader per metadata service: every step thread and account of the process shares its renewals.
        self._metadata: dict[str, MetadataCredentials] = {}
        self._lock = threading.Lock()
        # Shared by every account's client. Built now, with the process: the CA bundle took about 17 ms of CPU in
        # each pool process's first task, which at a batch's start is when 2 cores are busiest (httpcore's import,
        # the rest of what that task took, is loaded before the fork: worker.ims.transport).
        self._http: httpx.Client = shared_http(
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
        )

    def __call__(self, account: str) -> ImsClient:
        return self._client(account, account)

    def _client(self, key: str, account: str, region: str | None = None, project_id: str | None = None) -> ImsClient:
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = self.settings.account(account)
                if region is not None and project_id is not None:
                    config = config.in_region(region, project_id)
                client = ImsClient(
                    config,
                    connect_timeout=self.settings.http_connect_timeout,
                    read_timeout=self.settings.http_read_timeout,
                    hooks=RateLimitHooks(self.data, account, config, self.settings, self.round_trip),
                    http=self._http,
                    metadata=self._metadata_reader(config),
                )
                self._clients[key] = client
            return client

    def _metadata_reader(self, config: AccountSettings) -> MetadataCredentials | None:
        if config.credentials_source is not CredentialsSource.METADATA:
            return None
        reader = self._metadata.get(config.metadata_endpoint)
        if reader is None:
            reader = self._metadata[config.metadata_endpoint] = MetadataCredentials.from_endpoint(
                config.metadata_endpoint
            )
        return reader

    def in_region(self, account: str, region: str, project_id: str) -> ImsClient:
        """The account's credentials working in another region's project (a cross-region copy's destination)."""
        return self._client(f"{account}@{region}/{project_id}", account, region, project_id)

    def close(self) -> None:
        with self._lock:
            self._clients.clear()
            self._http.close()
            for reader in self._metadata.values():
                reader.close()
            self._metadata.clear()


def build_context(settings: Settings) -> StepContext:
    data = open_data_layer(redis_target(settings), settings.key_prefix)
    round_trip = RoundTrip()
    clients = AccountClients(settings, data, round_trip)
    # Threads start on first use, so a context built before a fork hands none to the children.
    threads = settings.step_threads
    parallel = ThreadPoolExecutor(threads, thread_name_prefix="step") if threads > 1 else None
    # At most a bundle's steps behind the message at work: beside its own, on the step threads (settings)
    behind = Behind(parallel, SIZE) if parallel is not None else None
    return StepContext(
        settings=settings,
        data=data,
        clients=clients,
        destinations=clients.in_region,
        parallel=parallel,
        round_trip=round_trip,
        behind=behind,
    )
