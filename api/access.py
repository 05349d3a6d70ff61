"""What a principal may do: the role an action needs, and which batches, plans, items and accounts are in its scope.
What is out of scope is answered as if it did not exist (404); an action the role does not allow, or an item naming
an account out of scope, is a 403 that says which (docs/teams.md)."""

from __future__ import annotations

from collections.abc import Iterable

from api import audit
from api.errors import Forbidden, NotFound
from api.principals import Principal
from config.settings import Role
from worker.domain.ownership import Owner


def need(who: Principal, role: Role, action: str) -> None:
    """403 unless ``who``'s role is ``role`` or above."""
    if not who.at_least(role):
        detail = f"{action} needs the {role.value} role or above; principal {who.name} is a {who.role.value}"
        raise Forbidden(audit.facts().refused(detail))


def may_act_in(who: Principal, accounts: Iterable[str]) -> None:
    """403 naming each account out of ``who``'s scope."""
    if outside := who.outside(accounts):
        names = ", ".join(outside)
        detail = f"account {names}: not among principal {who.name}'s accounts; nothing was stored"
        raise Forbidden(audit.facts().refused(detail))


def sees(who: Principal, owner: Owner | None) -> bool:
    return who.sees(None if owner is None else owner.accounts)


def hidden(who: Principal, not_found: str) -> NotFound:
    """The 404 for what is out of ``who``'s scope: answered as if missing, recorded in the audit trail as what it is."""
    audit.facts().refused(f"out of principal {who.name}'s scope (answered as not found)", out_of_scope=True)
    return NotFound(not_found)


def in_scope(who: Principal, owner: Owner | None, not_found: str) -> None:
    """404 (its existence is not disclosed) unless the record is in ``who``'s scope."""
    if not sees(who, owner):
        raise hidden(who, not_found)


def may_change(who: Principal, owner: Owner | None, action: str) -> None:
    """A submitter changes its own batches; an operator or admin any batch in its scope (seen already)."""
    need(who, Role.SUBMITTER, action)
    if not who.at_least(Role.OPERATOR) and (owner is None or owner.principal != who.name):
        detail = (
            f"{action}: a submitter changes only its own batches; principal {who.name} did not submit this one "
            "(an operator of its accounts may)"
        )
        raise Forbidden(audit.facts().refused(detail))
