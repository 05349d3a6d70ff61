"""Slot pools: where IMS counts an item's copy, and how many copies a pool may run at once.

IMS limits concurrent copies per tenant, and counts cross-region copies apart from in-region ones (5 of each:
``IMG.0060`` and ``IMG.0149``, docs/ims-api.md §2-3). A pool is named by a string: the account's name for its
in-region copies, ``<account>:cross-region`` for its cross-region ones. The slot grant takes the name and the limit;
``slot_limit`` is the one place the limit of a pool is decided.
"""

from __future__ import annotations

from config.settings import Settings
from worker.domain.item import CROSS_REGION, IN_REGION, ReplicationItem

MODES = (IN_REGION, CROSS_REGION)
_SEPARATOR = ":"


def pool_name(account: str, mode: str = IN_REGION) -> str:
    return account if mode == IN_REGION else f"{account}{_SEPARATOR}{mode}"


def pool_of(item: ReplicationItem) -> str:
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
