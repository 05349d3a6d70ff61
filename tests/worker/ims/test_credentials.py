"""Temporary credentials from the metadata service: renewed before they expire, one renewal shared by the threads,
valid ones kept when a renewal fails; on a clock the test moves. The settings' credential files: read again when they
change, and when the gateway refuses what they held."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from worker.errors import CredentialsUnavailableError, RetryableError
from worker.ims.credentials import (
    SECURITY_KEY_PATH,
    Credentials,
    FileCredentials,
    MetadataCredentials,
    metadata_fetch,
)
from worker.ims.signer import AkSkAuth

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


# -- the settings' files ------------------------------------------------------------------------------------------


def _put(path: Path, text: str, n: int) -> None:
    """``text`` in ``path``, modified at second ``n``: a file's time moves in clock ticks of some milliseconds, so a
    test's writes, closer than that, are given times of their own."""
    path.write_text(text)
    os.utime(path, ns=(n * 10**9, n * 10**9))


def _write(files: dict[str, Path], n: int) -> Credentials:
    """The ``n``th temporary credentials, written to ``files`` as a rotation does (whole files, one after the
    other)."""
    values = {"access_key": f"AK-FILE-{n}", "secret_key": f"SK-FILE-{n}", "security_token": f"TOKEN-FILE-{n}"}
    for name, path in files.items():
        _put(path, values[name] + "\n", n)
    return Credentials(*(SecretStr(values[name]) for name in ("access_key", "secret_key", "security_token")))


def _files(tmp_path: Path) -> tuple[FileCredentials, dict[str, Path], list[str]]:
    files = {name: tmp_path / name for name in ("access_key", "secret_key", "security_token")}
    first = _write(files, 1)
    learnt: list[str] = []
    return FileCredentials(first, files, learn=learnt.extend), files, learnt


def test_credential_files_are_read_again_when_they_change(tmp_path: Path) -> None:
    source, files, learnt = _files(tmp_path)
    assert ak(source.current()) == "AK-FILE-1" and learnt == []  # unchanged: not read
    second = _write(files, 2)
    assert source.current() == second
    assert learnt == second.secret_values()  # masked in the logs as soon as read
    assert set(source.secret_values()) == {*second.secret_values(), "AK-FILE-1", "SK-FILE-1", "TOKEN-FILE-1"}


def test_a_credential_file_caught_empty_leaves_the_credentials_held(tmp_path: Path) -> None:
    source, files, _ = _files(tmp_path)
    _put(files["secret_key"], "", 2)
    assert ak(source.current()) == "AK-FILE-1"
    second = _write(files, 2)
    assert source.current() == second  # its next change is read


def test_refused_credentials_are_read_again_from_the_files(tmp_path: Path) -> None:
    """A rotation caught half-way (a new AK, an old SK) is refused, and the files, complete by then, are read."""
    source, files, _ = _files(tmp_path)
    _put(files["access_key"], "AK-FILE-2\n", 2)
    torn = source.current()
    assert ak(torn) == "AK-FILE-2" and torn.secret_key.get_secret_value() == "SK-FILE-1"
    whole = _write(files, 2)
    assert source.renewed(torn) == whole


def test_a_refused_token_that_the_files_still_hold_fails_the_step_retryably(tmp_path: Path) -> None:
    """The token expired before the rotation came: the step tries again later, reading the files again, rather
    than the account being taken for a broken one (worker.errors.AuthenticationError)."""
    source, files, _ = _files(tmp_path)
    flow = AkSkAuth(source, "p" * 32).sync_auth_flow(httpx.Request("GET", "https://ims.example.com/v2/cloudimages"))
    assert "Access=AK-FILE-1" in next(flow).headers["Authorization"]
    refusal = {"error_code": "APIGW.0301", "error_msg": "calc ak sk signature fail:signature expired"}
    with pytest.raises(CredentialsUnavailableError, match="hold no newer one") as raised:
        flow.send(httpx.Response(401, json=refusal))
    assert isinstance(raised.value, RetryableError) and "FILE-1" not in str(raised.value)
    flow = AkSkAuth(source, "p" * 32).sync_auth_flow(httpx.Request("GET", "https://ims.example.com/v2/cloudimages"))
    next(flow)
    _write(files, 2)
    again = flow.send(httpx.Response(401, json=refusal))
    assert "Access=AK-FILE-2" in again.headers["Authorization"] and again.headers["X-Security-Token"] == "TOKEN-FILE-2"


def test_a_refused_permanent_key_from_a_file_is_an_authentication_failure(tmp_path: Path) -> None:
    files = {"access_key": tmp_path / "ak", "secret_key": tmp_path / "sk"}
    for path in files.values():
        path.write_text("PERMANENT\n")
    held = Credentials(SecretStr("PERMANENT"), SecretStr("PERMANENT"))
    assert FileCredentials(held, files).renewed(held) is None  # the refusal stands
