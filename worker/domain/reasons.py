"""Stable reason codes carried by every terminal item that did not succeed (and by cancellations), and by a succeeded
item whose copy exists but whose tags or sharing did not all apply."""

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
    # Cross-region refusals (also met at the copy call, then ``failed``).
    ENCRYPTED_CROSS_REGION = "ENCRYPTED_CROSS_REGION"
    AGENCY_NOT_CONFIGURED = "AGENCY_NOT_CONFIGURED"
    TARGET_PROJECT_NOT_FOUND = "TARGET_PROJECT_NOT_FOUND"
    TARGET_REGION_INVALID = "TARGET_REGION_INVALID"
    SHARE_PROJECT_INVALID = "SHARE_PROJECT_INVALID"
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
    AGENCY_NOT_PERMITTED = "AGENCY_NOT_PERMITTED"
    # A ``succeeded`` item whose copy exists but whose follow-ups did not all apply (``followups`` says which).
    TAGS_NOT_APPLIED = "TAGS_NOT_APPLIED"
    NOT_SHARED = "NOT_SHARED"
    # Why one follow-up did not apply (in ``followups``).
    TAG_INVALID = "TAG_INVALID"
    NOT_SHAREABLE_ENCRYPTED = "NOT_SHAREABLE_ENCRYPTED"
    TOO_MANY_MEMBERS = "TOO_MANY_MEMBERS"
    FOLLOWUP_DEADLINE = "FOLLOWUP_DEADLINE"
    # Cancellation by the user.
    CANCELLED = "CANCELLED"
