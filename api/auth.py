"""Bearer-token checks."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from pydantic import SecretStr


def token_matches(given: str, tokens: Sequence[SecretStr]) -> bool:
    """Constant-time comparison against every configured token.

    Every token is compared, even after a match, so the time taken says nothing about which token (or how much
    of one) matched. Bytes, not str: ``compare_digest`` refuses non-ASCII str.
    """
    candidate = given.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token.get_secret_value().encode())
    return matched
