"""The worker's error hierarchy: every failure says whether trying again can help.

```
ReplicatorError                 any failure the worker reports; carries the cloud details when there are any
 ├── RetryableError             transient: try again later (``retry_after`` seconds when known)
 │    ├── ThrottledError        429 APIGW.0308 / APIG.0308, IMG.0060 / IMG.0149 (IMS full), IMG.0187 (KMS
 │    │                         throttled), or the cluster-wide rate limiter refusing a request locally
 │    ├── CloudUnavailableError 5xx, timeouts, connection errors, a 2xx whose body cannot be understood
 │    └── CredentialsUnavailableError  temporary credentials expired and could not be renewed (the metadata
 │                              service is away): nothing was sent; the step tries again later
 └── PermanentError             trying again gives the same answer; carries a stable ``ReasonCode``
      ├── ImsRefusedError       an IMS (``IMG.*``) or KMS refusal of this one request
      └── AuthenticationError   the account's credentials or roles are refused (401 APIGW.0301/0307 after one
                                token renewal, 403 APIGW.0302, 403 roles); account-level, never retried
```

Cloud details (``endpoint``, ``status_code``, ``code``, ``message``, ``request_id``) are ``None`` for errors raised
locally. Messages are one line and short; the code that builds an error from a cloud answer removes the account's
secrets from the service's message before it gets here.
"""

from __future__ import annotations

from typing import Any

from config.settings import ENV_PREFIX
from worker.domain.reasons import ReasonCode

_MAX_MESSAGE = 300

# IMS refusal codes -> the stable reason an item carries (docs/ims-api.md §6).
IMS_REASONS: dict[str, ReasonCode] = {
    "IMG.0027": ReasonCode.IMAGE_NOT_FOUND,
    "IMG.0086": ReasonCode.IMAGE_NOT_FOUND,
    "IMG.0144": ReasonCode.IMAGE_NOT_FOUND,
    "IMG.0066": ReasonCode.IMAGE_NOT_FOUND,
    "IMG.0046": ReasonCode.IMAGE_NOT_ACTIVE,
    "IMG.0130": ReasonCode.FULL_ECS_IMAGE,
    "IMG.0167": ReasonCode.ISO_IMAGE,
    # No documented code for "over 128 GB" on copy; IMG.0059 is the simulator's chosen one (docs/simulator.md).
    "IMG.0059": ReasonCode.IMAGE_TOO_LARGE,
    "IMG.0002": ReasonCode.INVALID_NAME,
    "IMG.0003": ReasonCode.INVALID_NAME,
    "IMG.0013": ReasonCode.INVALID_NAME,
    "IMG.0062": ReasonCode.INVALID_NAME,
    "IMG.0009": ReasonCode.NAME_EXISTS,
    "IMG.0004": ReasonCode.INVALID_DESCRIPTION,
    "IMG.0054": ReasonCode.INVALID_DESCRIPTION,
    "IMG.0095": ReasonCode.KEY_NOT_FOUND,
    "IMG.0097": ReasonCode.KEY_DISABLED,
    "IMG.0099": ReasonCode.KEY_NO_ACCESS,
    "IMG.0096": ReasonCode.KEY_SAME_AS_SOURCE,
    "IMG.0101": ReasonCode.SOURCE_KEY_UNUSABLE,
    "IMG.0102": ReasonCode.SOURCE_KEY_UNUSABLE,
    "IMG.0103": ReasonCode.SOURCE_KEY_UNUSABLE,
    "IMG.0015": ReasonCode.QUOTA_EXCEEDED,
    "IMG.0047": ReasonCode.NOT_IMAGE_OWNER,
    "IMG.0106": ReasonCode.NOT_IMAGE_OWNER,
    # Cross-region copies (docs/ims-api.md §3).
    "IMG.0143": ReasonCode.ENCRYPTED_CROSS_REGION,
    "IMG.0146": ReasonCode.IMAGE_TOO_LARGE,
    "IMG.0142": ReasonCode.TARGET_REGION_INVALID,
    "IMG.0147": ReasonCode.TARGET_REGION_INVALID,
    "IMG.0104": ReasonCode.TARGET_PROJECT_NOT_FOUND,
    "IMG.0145": ReasonCode.TARGET_PROJECT_NOT_FOUND,
    "IMG.0151": ReasonCode.AGENCY_NOT_PERMITTED,
    "IMG.0179": ReasonCode.AGENCY_NOT_PERMITTED,
    # A receiving project's copy of a shared image (docs/ims-api.md §9): not accepted yet, a key IMS will not put on
    # it, an enterprise project (shared images are copied in IAM projects only).
    "IMG.0196": ReasonCode.SHARE_NOT_ACCEPTED,
    "IMG.0197": ReasonCode.SHARED_COPY_KEY_REFUSED,
    "IMG.0155": ReasonCode.ENTERPRISE_PROJECT_REFUSED,
    # Sharing and tags (docs/ims-api.md §9).
    "IMG.0098": ReasonCode.NOT_SHAREABLE_ENCRYPTED,
    "IMG.0088": ReasonCode.TOO_MANY_MEMBERS,
    "IMG.0076": ReasonCode.SHARE_PROJECT_INVALID,
    "IMG.0108": ReasonCode.SHARE_PROJECT_INVALID,
    "IMG.0177": ReasonCode.SHARE_PROJECT_INVALID,
    "IMG.0115": ReasonCode.TAG_INVALID,
    "IMG.0116": ReasonCode.TAG_INVALID,
}

# IMS is full: its in-region (IMG.0060) and cross-region (IMG.0149) copies are at their limit, which says nothing
# about the item (the submit step hands it back to its line: ``worker.steps.scheduling``).
IMS_FULL_CODES = frozenset({"IMG.0060", "IMG.0149"})
# Codes that mean "slow down", whatever HTTP status carries them (IMG.0060, IMG.0149 and IMG.0187 come as 400).
THROTTLE_CODES = frozenset({"APIGW.0308", "APIG.0308", "IMG.0187"}) | IMS_FULL_CODES


def reason_for_code(code: str | None) -> ReasonCode:
    """The stable reason for an IMS refusal code; any code not listed is ``IMS_REFUSED``."""
    return IMS_REASONS.get(code or "", ReasonCode.IMS_REFUSED)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


def _restore(cls: type[ReplicatorError], state: dict[str, Any]) -> ReplicatorError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    err.args = (state["message"],)
    return err


class ReplicatorError(Exception):
    """Root of every error the worker raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = _one_line(message)
        self.endpoint = endpoint
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        super().__init__(self.message)

    def __str__(self) -> str:
        head = " ".join(
            part
            for part in (
                f"{self.endpoint}:" if self.endpoint else "",
                f"HTTP {self.status_code}" if self.status_code is not None else "",
                self.code or "",
            )
            if part
        )
        tail = f" (request_id {self.request_id})" if self.request_id else ""
        return f"{head} {self.message}{tail}" if head else f"{self.message}{tail}"

    # Keyword-only arguments break Exception's default pickling, and Celery's prefork pool pickles exceptions.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), dict(self.__dict__)))


class RetryableError(ReplicatorError):
    """Transient: the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **cloud: Any) -> None:
        super().__init__(message, **cloud)
        self.retry_after = retry_after


class ThrottledError(RetryableError):
    """The cloud (or our own cluster-wide limiter) asked us to slow down; the request was not carried out."""


class CloudUnavailableError(RetryableError):
    """The cloud did not give a usable answer. A write such as ``copy`` may still have been carried out: the
    submit step looks for the copy before it sends the write again."""


class CredentialsUnavailableError(RetryableError):
    """The account's temporary credentials have expired and no new ones could be obtained; the request was not
    sent. The metadata service may answer again: the step waits and tries again, like any transient failure."""


class PermanentError(ReplicatorError):
    """Trying the same request again gives the same answer."""

    def __init__(self, message: str, *, reason: ReasonCode, **cloud: Any) -> None:
        super().__init__(message, **cloud)
        self.reason = reason


class ImsRefusedError(PermanentError):
    """IMS or KMS refused this request; ``reason`` is the stable code derived from the ``IMG.*`` code."""


class AuthenticationError(PermanentError):
    """The account's credentials or roles were refused: stop using this account until it is fixed."""

    def __init__(self, message: str, *, reason: ReasonCode = ReasonCode.ACCOUNT_AUTH_FAILED, **cloud: Any) -> None:
        super().__init__(message, reason=reason, **cloud)

    def for_account(self, account: str) -> str:
        """The message with what fixes it: the account's settings to correct, named as variables (a refusal raised
        locally, which repeats an earlier one, has nothing to add)."""
        setting = f"{ENV_PREFIX}ACCOUNTS__{account.upper()}__"
        if self.code == "APIGW.0310":
            remedy = f"the gateway knows no such project in this region: correct {setting}PROJECT_ID or {setting}REGION"
        elif self.status_code == 401:
            remedy = (
                f"correct the credentials: {setting}ACCESS_KEY and {setting}SECRET_KEY, or {setting}IAM_USER, "
                f"{setting}IAM_PASSWORD and {setting}IAM_DOMAIN"
            )
        elif self.status_code == 403:
            remedy = "grant the account's IAM user the IMS (and, for keys, KMS) permissions it was refused"
        else:
            return str(self)
        return f"{self}; {remedy}"
