"""Stable reason codes carried by every terminal item that did not succeed (and by cancellations), and by a succeeded
item whose copy exists but whose tags or sharing did not all apply; and what to do about each (``next_step``)."""

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
    # The account's guardrails (worker.domain.guardrails): refused at validation (``rejected``), or met again before
    # the copy call (``failed``) or before the member call (a share follow-up's reason, the item ``NOT_SHARED``).
    SHARE_NOT_ALLOWED = "SHARE_NOT_ALLOWED"
    REGION_NOT_ALLOWED = "REGION_NOT_ALLOWED"
    DECRYPT_NOT_ALLOWED = "DECRYPT_NOT_ALLOWED"
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
    # A receiving project's copy of an image shared with it (ims-contract.md §12, docs/ims-api.md §9).
    SHARE_NOT_ACCEPTED = "SHARE_NOT_ACCEPTED"
    SHARED_COPY_KEY_REFUSED = "SHARED_COPY_KEY_REFUSED"
    ENTERPRISE_PROJECT_REFUSED = "ENTERPRISE_PROJECT_REFUSED"
    # A ``succeeded`` item whose copy exists but whose follow-ups did not all apply (``followups`` says which).
    TAGS_NOT_APPLIED = "TAGS_NOT_APPLIED"
    NOT_SHARED = "NOT_SHARED"
    NOT_DISTRIBUTED = "NOT_DISTRIBUTED"  # a receiver of its distribution has no copy of its own (each one's reason)
    # Why one follow-up did not apply (in ``followups``).
    TAG_INVALID = "TAG_INVALID"
    NOT_SHAREABLE_ENCRYPTED = "NOT_SHAREABLE_ENCRYPTED"
    TOO_MANY_MEMBERS = "TOO_MANY_MEMBERS"
    FOLLOWUP_DEADLINE = "FOLLOWUP_DEADLINE"
    # Cancellation by the user.
    CANCELLED = "CANCELLED"


# What to do about each reason, in a sentence: shown with an item that ended without everything it asked for (the
# API's ``next_step``, ``imsrep item``). One table, so every code has its advice (a test walks ReasonCode).
# "Retry" means the batch's retry (imsrep retry, POST /v1/batches/{id}/retry), which takes failed items (and,
# asked with --cancelled, cancelled ones).
_NEXT_STEPS: dict[ReasonCode, str] = {
    ReasonCode.IMAGE_NOT_FOUND: "Check the image ID and the account: the image must be in the account's project "
    "and region. Fix the row and submit it again.",
    ReasonCode.IMAGE_NOT_ACTIVE: "Wait until the image is active (Normal in the console), then submit it again.",
    ReasonCode.FULL_ECS_IMAGE: "IMS does not copy full-ECS images this way: replicate the server's system-disk image "
    "instead.",
    ReasonCode.ISO_IMAGE: "IMS does not copy ISO images: make a system-disk image of a server installed from it and "
    "replicate that.",
    ReasonCode.IMAGE_TOO_LARGE: "The image is over IMS's copy limit (the message says which): it cannot be copied "
    "this way; export it to OBS and import it where it is needed.",
    ReasonCode.NOT_IMAGE_OWNER: "Only the project that owns an image can copy it: submit it with that project's "
    "account.",
    ReasonCode.INVALID_NAME: "Give a name IMS accepts (the message says which rule it broke) and submit again.",
    ReasonCode.INVALID_DESCRIPTION: "Fix the description as the message says and submit again.",
    ReasonCode.KEY_NOT_FOUND: "Check kms_key: the key ID or alias must exist in the account's region. Fix it and "
    "submit again.",
    ReasonCode.KEY_DISABLED: "Enable the KMS key (or name another one) and submit again.",
    ReasonCode.KEY_NO_ACCESS: "Give the account's IMS use of the key (a KMS grant or an IAM policy), or name another "
    "key, and submit again.",
    ReasonCode.KEY_SAME_AS_SOURCE: "The image is already encrypted with that key: nothing to re-key. Name another "
    "kms_key if a re-key was meant.",
    ReasonCode.SOURCE_KEY_UNUSABLE: "The source image's own KMS key is disabled, deleted or out of the account's "
    "reach: enable it or restore access, then submit again.",
    ReasonCode.UNKNOWN_ACCOUNT: "Name a configured account (imsrep accounts lists them) or configure this one, then "
    "submit again.",
    ReasonCode.ENCRYPTED_CROSS_REGION: "IMS does not copy an encrypted image across regions: make an unencrypted "
    "copy in its region first (no kms_key), then copy that one across.",
    ReasonCode.AGENCY_NOT_CONFIGURED: "Give the item an agency, or set the account's agency_name, then submit again.",
    ReasonCode.TARGET_PROJECT_NOT_FOUND: "Check target_project: a project of target_region that the account can "
    "use (default: the region's own). Fix it and submit again.",
    ReasonCode.TARGET_REGION_INVALID: "IMS does not copy from this region to target_region: name a region it "
    "copies to and submit again.",
    ReasonCode.SHARE_PROJECT_INVALID: "Check share_with: existing project IDs of the copy's region, not the one "
    "that owns the copy. Fix them and submit again, or share the copy by hand.",
    ReasonCode.SHARE_NOT_ALLOWED: "The account may not share copies with that project: leave it out of share_with, "
    "or have an operator add it to the account's share_projects, then submit again.",
    ReasonCode.REGION_NOT_ALLOWED: "The account may not copy into that region: choose one of its copy_regions, or "
    "have an operator add it, then submit again.",
    ReasonCode.DECRYPT_NOT_ALLOWED: "The account may not make an unencrypted copy of an encrypted image: name a "
    "kms_key to re-key it instead, then submit again.",
    ReasonCode.NAME_EXISTS: "An image of that name is already where the copy goes: delete or rename it and retry "
    "the batch, or submit again with another name.",
    ReasonCode.QUOTA_EXCEEDED: "The image quota stayed full: delete images or have the quota raised, then retry "
    "the batch.",
    ReasonCode.IMS_REFUSED: "IMS refused the copy (its code and words are in the message): fix what it names, then "
    "retry the batch.",
    ReasonCode.IMS_JOB_FAILED: "IMS's copy job failed: look the job up in the IMS console for why, then retry the "
    "batch.",
    ReasonCode.COPY_NOT_ACTIVE: "The new image never became active: check it in the IMS console (delete it if it "
    "is broken), then retry the batch.",
    ReasonCode.POLL_DEADLINE: "The copy outran IMSREP_POLL_DEADLINE_SECONDS: check its job in the IMS console; "
    "retrying the batch adopts the copy if IMS made it.",
    ReasonCode.RETRIES_EXHAUSTED: "The cloud kept failing (the last error is in the message): once the account "
    "answers again (imsrep accounts), retry the batch.",
    ReasonCode.ACCOUNT_AUTH_FAILED: "The account's credentials or roles were refused: fix them (imsrep accounts "
    "--check tells), then retry the batch.",
    ReasonCode.REDELIVERY_LIMIT: "Its worker kept dying on this item: read the worker's log for why, then retry "
    "the batch.",
    ReasonCode.AGENCY_NOT_PERMITTED: "The agency may not copy images to target_region: grant it IMS rights there "
    "(IAM), then retry the batch.",
    ReasonCode.SHARE_NOT_ACCEPTED: "The receiving project has not accepted the share: accept it as that project, "
    "then retry the batch.",
    ReasonCode.SHARED_COPY_KEY_REFUSED: "IMS would not encrypt this copy of a shared image: copy it without a key, "
    "then copy that private image with the key.",
    ReasonCode.ENTERPRISE_PROJECT_REFUSED: "IMS refused the enterprise project: check enterprise_project_id (leave "
    "it out for a shared image, which is copied in IAM projects only), then retry the batch.",
    ReasonCode.TAGS_NOT_APPLIED: "The copy exists; the message names the tags it lacks: add them to the copy in "
    "IMS (a succeeded item is not retried).",
    ReasonCode.NOT_SHARED: "The copy exists; the message names the projects it is not shared with and why: share "
    "it with them in IMS (a succeeded item is not retried).",
    ReasonCode.NOT_DISTRIBUTED: "The copy exists; the message names the receivers without a copy of their own "
    "and why (each is an item of the batch): fix each one's cause, then retry the batch (its failed receivers).",
    ReasonCode.TAG_INVALID: "Fix the tag as the message says and add it to the copy in IMS.",
    ReasonCode.NOT_SHAREABLE_ENCRYPTED: "An encrypted copy cannot be shared: make an unencrypted copy (no kms_key) "
    "to share.",
    ReasonCode.TOO_MANY_MEMBERS: "The image has as many member projects as IMS allows: remove some, then share it "
    "by hand.",
    ReasonCode.FOLLOWUP_DEADLINE: "Its tags or sharing did not finish in time: check the copy in IMS and add what "
    "is missing by hand.",
    ReasonCode.CANCELLED: "Cancelled by the user: if the copy is still wanted, resume the batch's cancelled items "
    "(imsrep retry --cancelled).",
}


def next_step(reason: ReasonCode) -> str:
    """What to do about ``reason``, in a sentence or two."""
    return _NEXT_STEPS[reason]
