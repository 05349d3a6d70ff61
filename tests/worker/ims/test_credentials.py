"""Temporary credentials from the metadata service: renewed before they expire, one renewal shared by the threads,
valid ones kept when a renewal fails; on a clock the test moves."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from worker.errors import CredentialsUnavailableError, RetryableError
from worker.ims.credentials import SECURITY_KEY_PATH, Credentials, MetadataCredentials, metadata_fetch

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Metadata:
    """A fake metadata service: each read hands out the next credentials, valid ``lifetime`` seconds from the
    clock's now; ``fail`` makes reads fail; ``gate`` holds a read until it is set."""

    def __init__(self, clock: Clock, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.reads = 0
        self.fail = False
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def __call__(self) -> Credentials:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            raise CredentialsUnavailableError("metadata service unreachable (ConnectError)", endpoint="securitykey")
        self.reads += 1
        n = self.reads
        return Credentials(
            SecretStr(f"AK-TEMP-{n}"),
            SecretStr(f"SK-TEMP-{n}"),
            SecretStr(f"TOKEN-TEMP-{n}"),
            expires_at=self.clock() + timedelta(seconds=self.lifetime),
        )


def provider(lifetime: float = 3600.0) -> tuple[MetadataCredentials, Metadata, Clock, list[str]]:
    clock = Clock()
    metadata = Metadata(clock, lifetime)
    learnt: list[str] = []

    def learn(values: Iterable[str]) -> None:
        learnt.extend(values)

    return MetadataCredentials(metadata, clock=clock, learn=learn), metadata, clock, learnt


def ak(credentials: Credentials) -> str:
    return credentials.access_key.get_secret_value()


def test_renewed_ten_minutes_before_expiry_and_not_sooner() -> None:
    source, metadata, clock, _ = provider(lifetime=3600)
    assert ak(source.current()) == "AK-TEMP-1"
    clock.advance(3600 - 600 - 1)
    assert ak(source.current()) == "AK-TEMP-1"
    assert metadata.reads == 1
    clock.advance(1)
    assert ak(source.current()) == "AK-TEMP-2"
    assert metadata.reads == 2


def test_short_lived_credentials_are_renewed_at_half_their_life() -> None:
    source, metadata, clock, _ = provider(lifetime=6)
    source.current()
    clock.advance(2.9)
    assert ak(source.current()) == "AK-TEMP-1"
    clock.advance(0.1)
    assert ak(source.current()) == "AK-TEMP-2"


def test_every_value_learnt_goes_to_the_log_redaction() -> None:
    source, _, _, learnt = provider()
    source.current()
    assert learnt == ["AK-TEMP-1", "SK-TEMP-1", "TOKEN-TEMP-1"]


def test_threads_share_one_renewal_and_wait_for_it_when_nothing_is_valid() -> None:
    source, metadata, _, _ = provider()
    metadata.gate = threading.Event()
    results: list[str] = []

    def sign() -> None:
        results.append(ak(source.current()))

    threads = [threading.Thread(target=sign) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert metadata.started.wait(10)
    assert results == []  # nothing valid to sign with: everyone waits for the one read
    metadata.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == ["AK-TEMP-1"] * 8
    assert metadata.reads == 1


def test_while_one_thread_renews_the_others_sign_with_the_valid_credentials() -> None:
    source, metadata, clock, _ = provider(lifetime=3600)
    source.current()
    clock.advance(3000)  # due for renewal, valid for 10 more minutes
    metadata.gate, metadata.started = threading.Event(), threading.Event()
    renewing = threading.Thread(target=source.current)
    renewing.start()
    assert metadata.started.wait(10)
    assert ak(source.current()) == "AK-TEMP-1"  # not held up by the renewal
    metadata.gate.set()
    renewing.join(10)
    assert ak(source.current()) == "AK-TEMP-2"
    assert metadata.reads == 2


def test_a_failed_renewal_keeps_the_valid_credentials_and_is_tried_again_later() -> None:
    source, metadata, clock, _ = provider(lifetime=3600)
    source.current()
    clock.advance(3100)
    metadata.fail = True
    assert ak(source.current()) == "AK-TEMP-1"
    metadata.fail = False
    clock.advance(4)  # the metadata service is not asked again at once
    assert ak(source.current()) == "AK-TEMP-1"
    assert metadata.reads == 1
    clock.advance(1)
    assert ak(source.current()) == "AK-TEMP-2"


def test_expired_credentials_with_no_renewal_are_a_retryable_error() -> None:
    source, metadata, clock, _ = provider(lifetime=60)
    source.current()
    metadata.fail = True
    clock.advance(60)
    with pytest.raises(CredentialsUnavailableError) as raised:
        source.current()
    assert isinstance(raised.value, RetryableError)
    assert "temporary credentials expired" in str(raised.value)
    assert "AK-TEMP" not in str(raised.value)
    metadata.fail = False
    with pytest.raises(CredentialsUnavailableError):
        source.current()  # within the retry interval: refused at once, the service not asked
    clock.advance(5)
    assert ak(source.current()) == "AK-TEMP-2"


def test_refused_credentials_are_replaced_once_for_all_threads() -> None:
    source, metadata, _, _ = provider()
    refused = source.current()
    renewed = source.renewed(refused)
    assert renewed is not None and ak(renewed) == "AK-TEMP-2"
    assert source.renewed(refused) is renewed  # a second thread refused the same ones: no second read
    assert metadata.reads == 2
    assert set(source.secret_values()) >= {"AK-TEMP-1", "AK-TEMP-2", "TOKEN-TEMP-2"}
    metadata.fail = True
    assert source.renewed(renewed) is None


def _answer(status: int, body: object) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == SECURITY_KEY_PATH
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_the_metadata_answer_is_read_as_the_sdk_reads_it() -> None:
    body = {
        "credential": {
            "access": "AK-META",
            "secret": "SK-META",
            "securitytoken": "TOKEN-META",
            "expires_at": "2026-01-01T06:00:00.000000Z",
        }
    }
    credentials = metadata_fetch("http://169.254.169.254", _answer(200, body))()
    assert credentials.secret_values() == ["AK-META", "SK-META", "TOKEN-META"]
    assert credentials.expires_at == datetime(2026, 1, 1, 6, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, {"error": "Please configure Cloud Service Agency first"}, "refused (is an agency attached"),
        (500, {"error": "busy"}, "refused"),
        (200, {"credential": {"access": "AK-META", "secret": "SK-META"}}, "malformed"),
    ],
)
def test_a_metadata_failure_is_retryable_and_quotes_nothing(status: int, body: object, message: str) -> None:
    with pytest.raises(CredentialsUnavailableError) as raised:
        metadata_fetch("http://169.254.169.254", _answer(status, body))()
    assert message in str(raised.value)
    assert "META" not in str(raised.value) and "Agency" not in str(raised.value)
