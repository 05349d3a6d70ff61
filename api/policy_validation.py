"""Checks a policy's definition, reporting every problem at once as a batch's are: the selector and template by the
campaign's own rules (``api.validation.parse_selection``), then what a policy adds: a name a batch label can be
(each run's batch is labelled with it), a schedule no tighter than ``policy_min_interval``, and template tags that
leave room for the provenance tags by which runs find the policy's copies."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from api.errors import FieldError, field_errors_from_pydantic
from api.validation import Selection, parse_selection, refusal
from config.settings import Settings
from worker.domain.followups import POLICY_TAGS
from worker.domain.naming import LABEL_RE, LABEL_RULE
from worker.domain.policy import POLICY_TAG_ROOM, PolicyDefinition
from worker.domain.selector import selection_record


def parse_policy(
    payload: Any, settings: Settings, current: PolicyDefinition | None = None
) -> tuple[PolicyDefinition, Selection]:
    """A whole definition (create), or ``current`` with the fields ``payload`` gives replaced (update)."""
    if current is not None and isinstance(payload, dict):
        payload = {**current.model_dump(mode="json"), **payload}
    try:
        definition = PolicyDefinition.model_validate(payload)
    except ValidationError as exc:
        raise refusal(field_errors_from_pydantic(list(exc.errors()), root="body"), 0) from None
    problems: list[FieldError] = []
    if not LABEL_RE.fullmatch(definition.name):
        problems.append(FieldError(None, "name", LABEL_RULE))
    every, floor = definition.schedule.every, settings.policy_min_interval
    if every is not None and every < floor:
        rule = f"must be at least {floor} seconds (IMSREP_POLICY_MIN_INTERVAL): each run lists the whole selection"
        problems.append(FieldError(None, "schedule.every", rule))
    selection = parse_selection(definition.selector, definition.template, None, settings, problems)
    tags = (selection.template.tags if selection is not None else None) or {}
    if clash := sorted(set(tags) & set(POLICY_TAGS)):
        problems.append(FieldError(None, "template.tags", f"{', '.join(clash)} is set by the policy; use another key"))
    elif len(tags) > POLICY_TAG_ROOM:
        room = f"IMS allows 10; {len(POLICY_TAGS)} are provenance tags"
        rule = f"at most {POLICY_TAG_ROOM} tags on a policy's copies ({room})"
        problems.append(FieldError(None, "template.tags", rule))
    if problems or selection is None:
        raise refusal(problems, 0)
    # Kept as parsed, defaults filled in: what each run's batch stores of its selection.
    normal = selection_record(selection.selector, selection.template, selection.account, selection.region, 0)
    return definition.model_copy(update={"selector": normal["selector"], "template": normal["template"]}), selection
