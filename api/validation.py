"""Checks a submission's syntax and turns it into items ready to store, or reports every problem at once.

The body is parsed here rather than by FastAPI so that one bad item does not hide the others: each item is
checked on its own (``ItemSpec``), then against the configured accounts and their guardrails
(``worker.domain.guardrails``), and a request with any problem is refused whole with the index, field and rule of
each. A selector and its template are checked the same way, the template's name pattern against the region of the
account whose images it selects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from api.errors import FieldError, InvalidRequest, field_errors_from_pydantic
from api.schemas import BatchRequest
from config.settings import Settings
from worker.data import NewItem
from worker.domain.distribution import distribution_problems
from worker.domain.guardrails import decrypt_breach, item_breaches, selection_decrypts
from worker.domain.naming import LABEL_RE, LABEL_RULE
from worker.domain.priority import Priority
from worker.domain.selector import Selector, Template
from worker.domain.spec import ItemOptions, ItemSpec, cross_field_problems

# The most items one plan request may hold, whatever IMSREP_MAX_BATCH_ITEMS allows a batch.
PLAN_MAX_ITEMS = 10_000


@dataclass(frozen=True)
class Selection:
    """A batch's selector with its template, and the account (and so the region) whose images it lists."""

    selector: Selector
    template: Template
    account: str
    region: str

    @property
    def accounts(self) -> list[str]:
        """Every account its batches act in: the selector's, and its template's receivers' (each accepts and copies
        as itself), all in the principal's scope as an item's are."""
        return [self.account, *(r.account for r in self.template.distribute or ())]


@dataclass(frozen=True)
class BatchSubmission:
    """A parsed batch request: its items, ready to store, and what describes the batch itself."""

    items: list[NewItem]
    label: str | None = None
    selection: Selection | None = None
    plan: bool = False  # judge it, copy nothing
    priority: Priority = Priority.NORMAL


def parse_batch(payload: Any, settings: Settings) -> BatchSubmission:
    try:
        envelope = BatchRequest.model_validate(payload)
    except ValidationError as exc:
        raise refusal(field_errors_from_pydantic(list(exc.errors()), root="body"), 0) from None
    if "items" not in envelope.model_fields_set and envelope.selector is None:
        raise refusal([FieldError(None, "items", "is required (or a selector)")], 0)
    raw_items = envelope.items or []
    count, limit, least = len(raw_items), settings.max_batch_items, 0 if envelope.selector is not None else 1
    if envelope.plan is True and limit > PLAN_MAX_ITEMS:
        limit = PLAN_MAX_ITEMS  # one plan's items are judged in one task; imsrep plan sends a big manifest in chunks
    if not least <= count <= limit:
        raise refusal([FieldError(None, "items", f"must hold {least} to {limit} items (got {count})")], count)

    problems: list[FieldError] = []
    if envelope.plan is not None and not isinstance(envelope.plan, bool):
        problems.append(FieldError(None, "plan", "must be true or false"))
    label = envelope.label
    if label is not None and not (isinstance(label, str) and LABEL_RE.fullmatch(label)):
        problems.append(FieldError(None, "label", LABEL_RULE))
    defaults = None
    if envelope.defaults is not None:
        try:
            defaults = ItemOptions.model_validate(envelope.defaults)
        except ValidationError as exc:
            problems += field_errors_from_pydantic(list(exc.errors()), prefix="defaults")
        else:
            if defaults.account is not None and defaults.account not in settings.accounts:
                problems.append(FieldError(None, "defaults.account", _unknown_account(settings)))
    selection = _selection(envelope, defaults, settings, problems)
    items: list[NewItem] = []
    for index, raw in enumerate(raw_items):
        try:
            spec = ItemSpec.model_validate(raw)
        except ValidationError as exc:
            found = field_errors_from_pydantic(list(exc.errors()), index)
            problems += found
            named = raw.get("account") if isinstance(raw, dict) else None
            if isinstance(named, str) and named not in settings.accounts and all(p.field != "account" for p in found):
                problems.append(FieldError(index, "account", _unknown_account(settings)))
            continue
        inherits_account = spec.account is None and defaults is not None and defaults.account is not None
        spec = spec.with_defaults(defaults)
        account = spec.account or settings.default_account
        if account in settings.accounts:
            found = _cross_field(spec, account, settings, index)
            problems += found
            if not found:
                items.append(NewItem(spec, account))
        elif not inherits_account:  # a bad default account is reported once, above
            problems.append(FieldError(index, "account", _unknown_account(settings)))
    if problems:
        raise refusal(problems, count)
    return BatchSubmission(items, label, selection, envelope.plan is True, envelope.priority)


def _selection(
    envelope: BatchRequest, defaults: ItemOptions | None, settings: Settings, problems: list[FieldError]
) -> Selection | None:
    """The selector and template, checked; their problems are added to ``problems``."""
    if envelope.selector is None:
        if envelope.template is not None:
            rule = "needs a selector: a template describes the images it selects"
            problems.append(FieldError(None, "template", rule))
        return None
    default_account = defaults.account if defaults else None
    return parse_selection(envelope.selector, envelope.template, default_account, settings, problems)


def parse_selection(
    raw_selector: Any, raw_template: Any, default_account: str | None, settings: Settings, problems: list[FieldError]
) -> Selection | None:
    """A selector and its template (a batch's or a policy's), checked; their problems are added to ``problems``."""
    selector = template = None
    try:
        selector = Selector.model_validate(raw_selector)
    except ValidationError as exc:
        problems += field_errors_from_pydantic(list(exc.errors()), prefix="selector")
    try:
        template = Template.model_validate(raw_template or {})
    except ValidationError as exc:
        problems += field_errors_from_pydantic(list(exc.errors()), prefix="template")
    if selector is None or template is None:
        return None
    account = selector.account or default_account or settings.default_account
    if account is None or account not in settings.accounts:
        problems.append(FieldError(None, "selector.account", _unknown_account(settings)))
        return None
    region = settings.accounts[account].region
    if problem := template.name_problem(region):
        problems.append(FieldError(None, "template.name", problem))
        return None
    # The template's item fields, checked as an item's are (target_region, share_with, ...), once for all.
    try:
        sample = template.spec(_SAMPLE_IMAGE, account)
    except ValidationError as exc:
        problems += field_errors_from_pydantic(list(exc.errors()), prefix="template")
        return None
    found = _account_rules(sample, account, settings)
    decrypts = selection_decrypts(selector, template)
    if breach := decrypt_breach(account, settings.accounts[account], source_encrypted=decrypts, kms_key=None):
        found.append(("decrypt" if template.decrypt else breach.field, breach.rule))
    problems += [FieldError(None, f"template.{field}", rule) for field, rule in found]
    return None if found else Selection(selector, template, account, region)


_SAMPLE_IMAGE = "00000000-0000-4000-8000-000000000000"  # a well-formed ID, only to check a template's fields


def parse_item(payload: Any, settings: Settings) -> NewItem:
    """One item (``POST /v1/replications``): the same rules as a batch item, reported without an index."""
    try:
        spec = ItemSpec.model_validate(payload)
    except ValidationError as exc:
        raise refusal(field_errors_from_pydantic(list(exc.errors()), root="body"), 1) from None
    account = spec.account or settings.default_account
    if account not in settings.accounts:
        raise refusal([FieldError(None, "account", _unknown_account(settings))], 1)
    if found := _cross_field(spec, account, settings, None):
        raise refusal(found, 1)
    return NewItem(spec, account)


def _cross_field(spec: ItemSpec, account: str, settings: Settings, index: int | None) -> list[FieldError]:
    """The rules between an item's fields (with its batch's defaults) and against its account."""
    return [FieldError(index, field, rule) for field, rule in _account_rules(spec, account, settings)]


def _account_rules(spec: ItemSpec, name: str, settings: Settings) -> list[tuple[str, str]]:
    """(field, rule) pairs: the rules between fields and against account ``name``, its guardrails among them (an
    item's decryption cannot be judged here: its source's encryption is read by the worker's validation)."""
    account = settings.accounts[name]
    found = cross_field_problems(spec, account, settings.provenance_tags)
    breaches = item_breaches(name, account, share_with=spec.share_with, target_region=spec.target_region)
    found += [(breach.field, breach.rule) for breach in breaches]
    if spec.distribute:
        unknown = [i for i, r in enumerate(spec.distribute) if r.account not in settings.accounts]
        found += [(f"distribute.{i}.account", _unknown_account(settings)) for i in unknown]
        found += distribution_problems(spec.distribute, name, settings.accounts, share_with=spec.share_with)
    return found


def receiver_projects(settings: Settings, asked: Iterable[ItemOptions]) -> list[str]:
    """The projects of the receivers that items or a template distribute to (accounts the validation found
    configured): the audit trail counts them among the projects the copies are shared with."""
    return [settings.accounts[r.account].project_id for options in asked for r in options.distribute or ()]


def _unknown_account(settings: Settings) -> str:
    if not settings.accounts:
        return "no accounts are configured on this server"
    return f"must be one of the configured accounts: {', '.join(sorted(settings.accounts))}"


def refusal(problems: list[FieldError], total: int) -> InvalidRequest:
    """The 422: every broken rule in ``errors``; ``detail`` counts bad items and spells out request-level ones."""
    parts = [f"{p.field}: {p.rule}" for p in problems if p.index is None]
    bad_items = len({p.index for p in problems if p.index is not None})
    if bad_items:
        parts.append(f"{bad_items} of {total} items are invalid")
    return InvalidRequest(problems, "; ".join(parts) + "; nothing was stored")
