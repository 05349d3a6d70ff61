"""Logging for the API, workers and beat: one line per record, as text or JSON (``IMSREP_LOG_FORMAT``), with every
configured secret masked in the whole formatted output (message, exception and stack), a last line of defence.

A record's context (the Celery task's name and ID, the item and batch it works on) is added by a filter the caller
passes (``worker.logcontext``): this module imports nothing of ours.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Literal

MASK = "**********"
# The audit trail's logger: one JSON object per line whatever IMSREP_LOG_FORMAT says, for a log shipper to keep.
AUDIT_LOGGER = "imsrep.audit"
# What a record may carry about the work it belongs to, in this order.
CONTEXT_FIELDS = ("task_name", "task_id", "batch_id", "item_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redactor:
    """Replaces every configured secret (of 4 characters or more) in a text, longest first."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too. The tuple is replaced whole, so a record formatted meanwhile in another thread sees the
        old list or the new one, never half of it."""
        known = {*self._secrets, *(s for s in secrets if len(s) >= 4)}
        self._secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def _context(record: logging.LogRecord) -> dict[str, str]:
    return {name: str(value) for name in CONTEXT_FIELDS if (value := getattr(record, name, None))}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [task_name[task_id] batch=… item=…]: message``, then any traceback, all redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        context = _context(record)
        parts = [record.name]
        if "task_name" in context:
            parts.append(f"{context['task_name']}[{context.get('task_id', '')}]")
        parts += [f"{key.removesuffix('_id')}={context[key]}" for key in ("batch_id", "item_id") if key in context]
        return f"{record.asctime} {record.levelname} {' '.join(parts)}: {record.message}"

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context fields that are known,
    and ``exception``/``stack`` as text. Each value is redacted before it is encoded, so an escape cannot hide a
    secret from the mask."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        redacted = {key: self.redact(value) if isinstance(value, str) else value for key, value in entry.items()}
        return json.dumps(redacted, ensure_ascii=False)


class AuditFormatter(logging.Formatter):
    """An audit record (the ``audit`` mapping a log record carries) as one JSON object: the level, logger and message
    a JSON log line has, then the audit record's fields, each string redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "audit", None)
        if not isinstance(fields, dict):
            return self.redact(record.getMessage())
        entry = {"level": record.levelname, "logger": record.name, "message": record.getMessage(), **fields}
        return json.dumps({key: self._redacted(value) for key, value in entry.items()}, ensure_ascii=False)

    def _redacted(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self._redacted(v) for v in value]
        return value


def configure_logging(
    level: str,
    secrets: Iterable[str] = (),
    *,
    log_format: Literal["text", "json"] = "text",
    context: logging.Filter | None = None,
) -> None:
    """One handler on the root logger, to stderr; ``context`` (a filter) adds what it knows to each record."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(redact) if log_format == "json" else TextFormatter(redact))
    if context is not None:
        handler.addFilter(context)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    audit = logging.StreamHandler()
    audit.setFormatter(AuditFormatter(redact))
    audit_logger = logging.getLogger(AUDIT_LOGGER)
    audit_logger.handlers[:] = [audit]
    audit_logger.setLevel(logging.INFO)  # kept whatever IMSREP_LOG_LEVEL drops
    audit_logger.propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)


def mask_secrets(secrets: Iterable[str]) -> None:
    """Have the handlers ``configure_logging`` installed mask these too: secrets learnt at run time (temporary
    credentials from the metadata service), which the settings could not name at start-up."""
    values = list(secrets)
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, (TextFormatter, JsonFormatter)):
            handler.formatter.redact.add(values)
