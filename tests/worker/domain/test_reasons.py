"""Every reason code an item can carry comes with what to do about it."""

from __future__ import annotations

import pytest

from worker.domain.reasons import ReasonCode, next_step


@pytest.mark.parametrize("reason", list(ReasonCode))
def test_every_reason_has_a_next_step_of_a_sentence_or_two(reason: ReasonCode) -> None:
    step = next_step(reason)
    assert step.endswith(".") and step[0].isupper() and 20 <= len(step) <= 240, step
    assert "\n" not in step


def test_only_a_failed_item_is_told_to_retry_the_batch() -> None:
    # Retry takes failed items only: a refusal before the copy (rejected), a succeeded copy and a cancellation are
    # never told to retry.
    never_failed = {ReasonCode.CANCELLED, ReasonCode.TAGS_NOT_APPLIED, ReasonCode.NOT_SHARED, ReasonCode.ISO_IMAGE,
                    ReasonCode.INVALID_NAME, ReasonCode.KEY_SAME_AS_SOURCE, ReasonCode.IMAGE_NOT_ACTIVE}  # fmt: skip
    assert not [r for r in never_failed if "retry the batch" in next_step(r)]
