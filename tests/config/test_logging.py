"""Logging: every secret masked in the whole formatted output (message, exception, stack), in both formats; the JSON
format gives one object a line with the task's name and ID and the item and batch it works on."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from celery import Celery

from config.logging import AUDIT_LOGGER, MASK, JsonFormatter, Redactor, TextFormatter, configure_logging, mask_secrets
from config.settings import load_settings
from worker.logcontext import TaskContext, working_on

# One of each kind of secret the settings hold.
SECRETS = {
    "access key": "AKLOGTEST0123456789",
    "secret key": "sk-log-test/with+odd=chars",
    "temporary access key": "AKTEMPLOGTEST0123",
    "temporary secret key": "sk-temp-log-test",
    "security token": "gQpjbi1ub3J0aC00security+token/log=test",
    "IAM password": 'pässwörd "quoted" \\ back',
    "API token": "api-token-for-the-log-test",
    "Flower password": "flower-password-log-test",
}


@pytest.fixture
def settings_secrets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID", "0" * 32)
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY", SECRETS["access key"])
    monkeypatch.setenv("IMSREP_ACCOUNTS__DEFAULT__SECRET_KEY", SECRETS["secret key"])
    monkeypatch.setenv("IMSREP_ACCOUNTS__TEMP__PROJECT_ID", "2" * 32)
    monkeypatch.setenv("IMSREP_ACCOUNTS__TEMP__ACCESS_KEY", SECRETS["temporary access key"])
    monkeypatch.setenv("IMSREP_ACCOUNTS__TEMP__SECRET_KEY", SECRETS["temporary secret key"])
    monkeypatch.setenv("IMSREP_ACCOUNTS__TEMP__SECURITY_TOKEN", SECRETS["security token"])
    monkeypatch.setenv("IMSREP_ACCOUNTS__IAM__PROJECT_ID", "1" * 32)
    monkeypatch.setenv("IMSREP_ACCOUNTS__IAM__IAM_USER", "user")
    monkeypatch.setenv("IMSREP_ACCOUNTS__IAM__IAM_DOMAIN", "domain")
    monkeypatch.setenv("IMSREP_ACCOUNTS__IAM__IAM_PASSWORD", SECRETS["IAM password"])
    monkeypatch.setenv("IMSREP_API_TOKENS", SECRETS["API token"])
    monkeypatch.setenv("IMSREP_FLOWER_PASSWORD", SECRETS["Flower password"])
    values = load_settings().secret_values()
    assert set(values) == set(SECRETS.values())
    return values


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root, audit = logging.getLogger(), logging.getLogger(AUDIT_LOGGER)
    saved = root.handlers[:], root.level, audit.handlers[:], audit.level, audit.propagate
    stream = io.StringIO()
    yield root, stream
    root.handlers[:], root.level, audit.handlers[:], audit.level, audit.propagate = saved


def _log_everywhere(logger: logging.Logger, secret: str) -> None:
    try:
        raise RuntimeError(f"the cloud echoed {secret} back")
    except RuntimeError:
        logger.exception("call failed for %s", secret, stack_info=True)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("kind", SECRETS)
def test_a_secret_in_message_exception_and_stack_is_masked(
    settings_secrets: list[str], captured, log_format: str, kind: str
) -> None:
    root, stream = captured
    configure_logging("INFO", settings_secrets, log_format=log_format)
    root.handlers[0].stream = stream
    _log_everywhere(logging.getLogger("imsrep.test"), SECRETS[kind])
    output = stream.getvalue()
    assert "Traceback" in output and "RuntimeError" in output and "Stack (most recent call last)" in output
    assert SECRETS[kind] not in output
    if log_format == "json":
        (line,) = output.splitlines()
        entry = json.loads(line)
        assert MASK in entry["message"] and MASK in entry["exception"]
        assert json.dumps(SECRETS[kind], ensure_ascii=False)[1:-1] not in output  # not even JSON-escaped
    else:
        assert output.count(MASK) >= 2


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_audit_record_is_one_json_object_a_line_whatever_the_format(captured, log_format: str) -> None:
    root, stream = captured
    configure_logging("WARNING", ["leaked-token-1234"], log_format=log_format)
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.handlers[0].stream = stream  # type: ignore[attr-defined]
    fields = {"action": "batch.submit", "principal": "leaked-token-1234", "accounts": ["a", "leaked-token-1234"]}
    audit.info("batch.submit ok (202)", extra={"audit": fields})  # kept although the level is WARNING
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry == {
        "level": "INFO", "logger": AUDIT_LOGGER, "message": "batch.submit ok (202)", "action": "batch.submit",
        "principal": MASK, "accounts": ["a", MASK],
    }  # fmt: skip


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_learnt_at_run_time_are_masked_from_then_on(captured, log_format: str) -> None:
    root, stream = captured
    configure_logging("INFO", [], log_format=log_format)
    root.handlers[0].stream = stream
    logger = logging.getLogger("imsrep.test")
    logger.info("before: %s", "TOKEN-FROM-METADATA")
    mask_secrets(["TOKEN-FROM-METADATA", "AK-FROM-METADATA"])
    logger.info("after: %s and %s", "TOKEN-FROM-METADATA", "AK-FROM-METADATA")
    before, after = stream.getvalue().splitlines()
    assert "TOKEN-FROM-METADATA" in before
    assert "METADATA" not in after and after.count(MASK) == 2


def test_the_formatters_redact_what_they_are_handed() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "signing with %s", ("SK-SECRET",), None)
    assert TextFormatter(Redactor(["SK-SECRET"])).format(record).endswith(f"x: signing with {MASK}")
    assert json.loads(JsonFormatter(Redactor(["SK-SECRET"])).format(record))["message"] == f"signing with {MASK}"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_tasks_records_carry_its_name_id_item_and_batch(captured, log_format: str) -> None:
    root, stream = captured
    configure_logging("INFO", [], log_format=log_format, context=TaskContext())
    root.handlers[0].stream = stream
    app = Celery("log-test", broker="memory://", set_as_current=False)

    @app.task(name=f"replication.test-{log_format}")
    def step(item_id: str, batch_id: str) -> None:
        logging.getLogger("worker.steps.test").info("working on %s", item_id)

    result = step.apply(kwargs={"item_id": "i" * 32, "batch_id": "b" * 32}, task_id="task-1")
    assert result.successful()
    logging.getLogger("outside").info("no task here")
    lines = stream.getvalue().splitlines()
    first = next(line for line in lines if "working on" in line)
    second = next(line for line in lines if "no task here" in line)
    if log_format == "json":
        entry, outside = json.loads(first), json.loads(second)
        assert (entry["task_name"], entry["task_id"]) == ("replication.test-json", "task-1")
        assert (entry["item_id"], entry["batch_id"]) == ("i" * 32, "b" * 32)
        assert entry["level"] == "INFO" and entry["logger"] == "worker.steps.test" and entry["time"].endswith("+00:00")
        assert "task_id" not in outside
    else:
        assert f"worker.steps.test replication.test-text[task-1] batch={'b' * 32} item={'i' * 32}: working on" in first
        assert second.endswith("INFO outside: no task here")


def test_the_records_of_a_bundles_steps_name_the_item_each_is_about(captured) -> None:
    root, stream = captured
    configure_logging("INFO", [], log_format="json", context=TaskContext())
    root.handlers[0].stream = stream
    app = Celery("log-test-bundle", broker="memory://", set_as_current=False)

    @app.task(name="replication.test-bundle")
    def step(bundle: list[dict[str, str]]) -> None:
        for kwargs in bundle:
            with working_on(kwargs["item_id"]):
                logging.getLogger("worker.steps.test").info("working on it")

    assert step.apply(kwargs={"bundle": [{"item_id": "a" * 32}, {"item_id": "c" * 32}]}, task_id="task-2").successful()
    entries = [json.loads(line) for line in stream.getvalue().splitlines() if "working on it" in line]
    assert [e["item_id"] for e in entries] == ["a" * 32, "c" * 32]
    assert all(e["task_id"] == "task-2" for e in entries)
