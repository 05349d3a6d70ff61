"""An account's credentials checked on request (``POST /v1/accounts/{name}/check``), from a worker: the API never
calls the cloud."""

from __future__ import annotations

from worker.errors import AuthenticationError, ReplicatorError
from worker.steps.context import Next, StepContext
from worker.steps.scheduling import pool_named, read_quota


def check_credentials(ctx: StepContext, account: str) -> list[Next]:
    """Check the account's credentials with one signed read (its image quota, recorded too). An account whose
    credentials were refused a moment ago is not asked again: IAM locks a key out after a few refusals."""
    if ctx.account(account) is None:
        return []
    now = ctx.clock()
    try:
        # One signed read, recorded as the pool's quota reading (the grants counted around it).
        read_quota(ctx, pool_named(ctx, account), read=ctx.client(account).get_quota)
    except AuthenticationError as error:
        ctx.credentials_refused(account, error)
        ctx.data.accounts.record_check(account, f"refused: {error.for_account(account)}", now)
    except ReplicatorError as error:
        ctx.data.accounts.record_check(account, f"unreachable: {error}", now)
    else:
        ctx.data.accounts.record_check(account, "ok", now)
    return []
