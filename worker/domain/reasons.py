"""Stable reason codes carried by every terminal item that did not succeed (and by cancellations)."""

from __future__ import annotations

from enum import Enum


class ReasonCode(str, Enum):
    # Validation refusals (the item never reached IMS's copy call): state ``rejected``.
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    IMAGE_NOT_ACTIVE = "IMAGE_NOT_ACTIVE"
    FULL_ECS_IMAGE = "FULL_ECS_IMAGE"
    ISO_IMAGE = "ISO_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    NOT_IMAGE_OWNER = "NOT_IMAGE_OWNER"
    INVALID_NAME = "INVALID_NAME"
    INVALID_DESCRIPTION = "INVALID_DESCRIPTION"
    KEY_NOT_FOUND = "KEY_NOT_FOUND"
    KEY_DISABLED = "KEY_DISABLED"
    KEY_NO_ACCESS = "KEY_NO_ACCESS"
    KEY_SAME_AS_SOURCE = "KEY_SAME_AS_SOURCE"
    SOURCE_KEY_UNUSABLE = "SOURCE_KEY_UNUSABLE"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    # Refusals or failures at or after the copy call: state ``failed``.
    NAME_EXISTS = "NAME_EXISTS"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    IMS_REFUSED = "IMS_REFUSED"  # a permanent IMS error with no more specific code
    IMS_JOB_FAILED = "IMS_JOB_FAILED"
    COPY_NOT_ACTIVE = "COPY_NOT_ACTIVE"  # the job said SUCCESS but the new image never became active
    POLL_DEADLINE = "POLL_DEADLINE"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    ACCOUNT_AUTH_FAILED = "ACCOUNT_AUTH_FAILED"
    REDELIVERY_LIMIT = "REDELIVERY_LIMIT"
    # Cancellation by the user.
    CANCELLED = "CANCELLED"
