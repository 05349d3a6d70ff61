"""Who a batch or plan belongs to: the principal that made it and the accounts it acts in (docs/teams.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    principal: str
    accounts: tuple[str, ...]  # sorted, each once

    @classmethod
    def of(cls, principal: str, accounts: Iterable[str]) -> Owner:
        return cls(principal, tuple(sorted(set(accounts))))

    def to_meta(self) -> dict[str, str]:
        """As fields of the batch's or plan's hash."""
        return {"principal": self.principal, "accounts": ",".join(self.accounts)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> Owner | None:
        """None for a record stored before ownership was kept: only principals of every account see it."""
        if "principal" not in meta:
            return None
        return cls(meta["principal"], tuple(a for a in meta.get("accounts", "").split(",") if a))
