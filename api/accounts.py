"""The account view, without HTTP: each account's credentials, image quota, slots, outage and waiting items, read
from what the workers keep in Redis (the API never calls IMS; a credentials check is a worker's task)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from api import access, audit
from api.enqueue import Enqueuer
from api.errors import NotFound
from api.principals import Principal
from config.settings import Role, Settings
from worker.data import DataLayer, PoolStatus
from worker.domain.pools import pools, split_pool
from worker.domain.waits import stalls


@dataclass(frozen=True)
class AccountView:
    name: str
    mode: str  # in-region or cross-region: IMS counts the two kinds of copy apart
    region: str
    project_id: str
    status: PoolStatus
    mean_copy_seconds: float | None  # of its latest successful copies; None before any has finished

    @property
    def drain_unknown(self) -> str | None:
        """Why no drain time can be forecast: ``blocked`` (the line waits on something no copy's end moves: an
        outage, the quota, slots held elsewhere), ``no_history`` (no copy has finished yet); None when one can."""
        if stalls(self.status.blocked_by):
            return "blocked"
        return "no_history" if self.mean_copy_seconds is None else None

    @property
    def drain_seconds(self) -> float | None:
        """A forecast of the time to copy every waiting item at the current number of slots."""
        if self.drain_unknown or self.mean_copy_seconds is None:
            return None
        slots = max(1, self.status.effective)
        return self.status.queued * self.mean_copy_seconds / slots


class AccountService:
    def __init__(self, data: DataLayer, enqueuer: Enqueuer, settings: Settings) -> None:
        self.data = data
        self.enqueuer = enqueuer
        self.settings = settings

    def accounts(self, who: Principal) -> list[AccountView]:
        """The accounts in ``who``'s scope (others' project IDs are not disclosed)."""
        views = []
        mine = [pool for pool in pools(self.settings) if not who.outside([pool.account])]
        for status in self.data.pool_statuses(mine, time.time()):
            account = self.settings.accounts[status.pool.account]
            samples = self.data.accounts.durations(status.pool.name)
            mean = sum(seconds for _, seconds in samples) / len(samples) if samples else None
            _, mode = split_pool(status.pool.name)
            views.append(AccountView(status.pool.account, mode, account.region, account.project_id, status, mean))
        return views

    def request_check(self, who: Principal, name: str | None) -> list[str]:
        """Ask for a check of one account's credentials (or of every account in ``who``'s scope); returns the
        accounts asked."""
        missing = f"account {name} is not configured"
        if name is not None and name not in self.settings.accounts:
            raise NotFound(missing)
        if name is not None and who.outside([name]):
            raise access.hidden(who, missing)
        names = [name] if name else sorted(a for a in self.settings.accounts if not who.outside([a]))
        audit.facts().accounts.update(names)
        access.need(who, Role.OPERATOR, "checking account credentials")
        for account in names:
            self.enqueuer.send_check(account)
        return names
