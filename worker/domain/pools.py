"""Slot pools: where IMS counts an item's copy, and how many copies a pool may run at once.

IMS limits concurrent copies per tenant, and counts cross-region copies apart from in-region ones (5 of each:
``IMG.0060`` and ``IMG.0149``, docs/ims-api.md §2-3). A pool is named by a string: the account's name for its
in-region copies, ``<account>:cross-region`` for its cross-region ones. Each pool has its own slots, line of waiting
batches and capacity (``worker/data/slots.py``); ``slot_limit`` is the one place the limit of a pool is decided.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from worker.domain.item import CROSS_REGION, IN_REGION, ReplicationItem

MODES = (IN_REGION, CROSS_REGION)
_SEPARATOR = ":"


@dataclass(frozen=True)
class Pool:
    """A pool, with what the grant needs to know about it."""

    name: str  # the key of its slots, queues and capacity
    account: str  # whose circuit gates it
    limit: int  # concurrent copies IMS allows (configured)
    # Whose private-image quota its copies use: the account's project for in-region copies. Cross-region copies
    # land in projects of other regions, one pool for all of them: their quota is not gated (None).
    project: str | None


def pool_name(account: str, mode: str = IN_REGION) -> str:
    return account if mode == IN_REGION else f"{account}{_SEPARATOR}{mode}"


def pool_name_of(item: ReplicationItem) -> str:
    return pool_name(item.account, item.mode)


def split_pool(pool: str) -> tuple[str, str]:
    """(account, mode) of a pool name."""
    account, _, mode = pool.partition(_SEPARATOR)
    return account, mode or IN_REGION


def slot_limit(settings: Settings, pool: str) -> int | None:
    """How many copies the pool may run at once; None when its account is not configured (nothing is granted)."""
    account_name, mode = split_pool(pool)
    account = settings.accounts.get(account_name)
    if account is None:
        return None
    return account.cross_region_slot_limit if mode == CROSS_REGION else account.slot_limit


def pool_named(settings: Settings, name: str) -> Pool | None:
    """The pool of that name; None when its account is no longer configured."""
    limit = slot_limit(settings, name)
    if limit is None:
        return None
    account_name, mode = split_pool(name)
    project = settings.accounts[account_name].project_id if mode == IN_REGION else None
    return Pool(name=name, account=account_name, limit=limit, project=project)


def pool_of(settings: Settings, item: ReplicationItem) -> Pool | None:
    """The pool of an item's copy; None when its account is no longer configured."""
    return pool_named(settings, pool_name_of(item))


def pools(settings: Settings) -> list[Pool]:
    """Every configured pool: each account's in-region and cross-region copies."""
    names = [pool_name(account, mode) for account in sorted(settings.accounts) for mode in MODES]
    return [pool for name in names if (pool := pool_named(settings, name)) is not None]
