"""ImsClient against the IMS simulator over real HTTP: signatures, tokens, the copy round trip, every refusal.

The simulator is written from the contract independently of the client (they share no code), so agreement here
means both read the contract the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cli.services import SIMULATOR_PROJECT_ID
from config.settings import AccountSettings
from worker.domain.reasons import ReasonCode
from worker.errors import AuthenticationError, CloudUnavailableError, ImsRefusedError, ThrottledError
from worker.ims.client import ImsClient
from worker.ims.hooks import ClientHooks
from worker.ims.models import Image, Job

pytestmark = pytest.mark.integration

IAM_USER, IAM_PASSWORD, IAM_DOMAIN = "it-user", "it-password-7f3a", "it-domain"
MISSING_ID = "00000000-0000-4000-8000-000000000000"

SimulatorFactory = Callable[..., Any]  # tests/conftest.py's start_simulator, returning a SimulatorServer


def _start(start_simulator: SimulatorFactory, **options: object) -> Any:
    return start_simulator(iam_user=IAM_USER, iam_password=IAM_PASSWORD, iam_domain=IAM_DOMAIN, **options)


def _account(sim: Any, **credentials: object) -> AccountSettings:
    creds = credentials or {"access_key": sim.access_key, "secret_key": sim.secret_key}
    return AccountSettings(
        region=sim.region,
        project_id=sim.project_id,
        ims_endpoint=sim.url,
        kms_endpoint=sim.url,
        iam_endpoint=sim.url,
        **creds,
    )


def _client(sim: Any, read_timeout: float = 5.0, **credentials: object) -> ImsClient:
    return ImsClient(_account(sim, **credentials), connect_timeout=2.0, read_timeout=read_timeout)


class OutcomeLog(ClientHooks):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def after_response(self, endpoint: str, outcome: str) -> None:
        self.seen.append((endpoint, outcome))


def _token_credentials(password: str = IAM_PASSWORD) -> dict[str, str]:
    return {"iam_user": IAM_USER, "iam_password": password, "iam_domain": IAM_DOMAIN}


def _by_name(client: ImsClient, name: str) -> Image:
    (image,) = client.list_images(name=name)
    return image


def _wait_for_job(client: ImsClient, job_id: str, timeout: float = 20.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        if job.finished or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


@pytest.fixture
def sim(start_simulator: SimulatorFactory) -> Any:
    return _start(start_simulator, copy_seconds=0.5, seed=1)


@pytest.fixture
def client(sim: Any) -> Iterator[ImsClient]:
    with _client(sim) as c:
        yield c


# -- authentication --------------------------------------------------------------------------------------------


def test_aksk_signed_calls_are_accepted(client: ImsClient) -> None:
    images = client.list_images()
    assert {"ubuntu-22.04-web", "ecs-full-backup", "install-iso"} <= {i.name for i in images}
    assert client.list_keys()


def test_token_auth_is_accepted_and_renewed_after_revocation(sim: Any) -> None:
    outcomes = OutcomeLog()
    account = _account(sim, **_token_credentials())
    with ImsClient(account, connect_timeout=2.0, read_timeout=5.0, hooks=outcomes) as client:
        assert client.list_images(name="ubuntu-22.04-web")
        httpx.post(f"{sim.url}/_sim/tokens/revoke", json={}, timeout=5).raise_for_status()
        # The cached token is refused once (401), renewed, and the call replayed.
        assert client.list_images(name="ubuntu-22.04-web")
    assert outcomes.seen == [
        ("token", "201"),
        ("list_images", "200"),
        ("token", "201"),
        ("list_images", "200"),
    ]


def test_a_wrong_secret_key_is_an_authentication_error(sim: Any) -> None:
    wrong = "not-the-secret-key"
    with (
        _client(sim, access_key=sim.access_key, secret_key=wrong) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.list_images()
    assert info.value.status_code == 401 and info.value.code == "APIGW.0301"
    assert info.value.reason is ReasonCode.ACCOUNT_AUTH_FAILED
    assert wrong not in str(info.value) and sim.access_key not in str(info.value)


def test_a_wrong_password_is_an_authentication_error(sim: Any) -> None:
    wrong = "wrong-password-1234"
    with _client(sim, **_token_credentials(wrong)) as client, pytest.raises(AuthenticationError) as info:
        client.get_image(MISSING_ID)
    assert info.value.endpoint == "token" and info.value.status_code == 401
    assert wrong not in str(info.value)


# -- the round trip --------------------------------------------------------------------------------------------


def test_list_get_copy_job_progress_keys_round_trip(client: ImsClient) -> None:
    every = list(client.iter_images(page_size=3))
    assert len(every) == len(client.list_images()) == len({i.id for i in every})

    source = _by_name(client, "ubuntu-22.04-web")
    assert client.get_image(source.id) == source
    assert client.get_image(MISSING_ID) is None
    assert source.status == "active" and not source.is_full_ecs and not source.is_iso

    default_key = client.find_key("ims/default")
    assert default_key is not None and default_key.is_default and default_key.enabled
    app_key = client.find_key("app-key")
    assert app_key is not None
    assert client.find_key(app_key.key_id) == app_key
    assert client.find_key(MISSING_ID) is None
    assert client.find_key("no-such-alias") is None
    assert {k.key_alias for k in client.list_keys(key_state="2")} >= {"ims/default", "app-key"}

    job_id = client.copy_image(source.id, name="copy_cn-north-4_ubuntu", description="it copy", cmk_id=app_key.key_id)
    progress = client.get_job_progress(job_id)
    assert progress.status in (Job.INIT, Job.RUNNING, Job.SUCCESS)
    job = _wait_for_job(client, job_id)
    assert job.succeeded, job
    assert job.job_type == "imsCopyImageInRegionJob"
    assert job.begin_time is not None and job.end_time is not None

    copy = client.get_image(job.image_id or "")
    assert copy is not None and copy.id != source.id
    assert copy.name == "copy_cn-north-4_ubuntu" and copy.description == "it copy"
    assert copy.cmk_id == app_key.key_id and copy.is_encrypted
    assert copy.size_bytes == source.size_bytes


def test_copy_of_an_encrypted_image_without_a_key_is_unencrypted(client: ImsClient) -> None:
    source = _by_name(client, "euleros-encrypted")
    assert source.is_encrypted
    job = _wait_for_job(client, client.copy_image(source.id, name="plain copy"))
    copy = client.get_image(job.image_id or "")
    assert copy is not None and not copy.is_encrypted


# -- refusals --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fields", "reason", "code"),
    [
        ("ecs-full-backup", {}, ReasonCode.FULL_ECS_IMAGE, "IMG.0130"),
        ("install-iso", {}, ReasonCode.ISO_IMAGE, "IMG.0167"),
        ("bigdata-200g", {}, ReasonCode.IMAGE_TOO_LARGE, "IMG.0059"),
        ("uploading-image", {}, ReasonCode.IMAGE_NOT_ACTIVE, "IMG.0046"),
        (None, {}, ReasonCode.IMAGE_NOT_FOUND, None),
        ("ubuntu-22.04-web", {"name": "bad/name"}, ReasonCode.INVALID_NAME, "IMG.0003"),
        ("ubuntu-22.04-web", {"name": " edge"}, ReasonCode.INVALID_NAME, "IMG.0003"),
        ("ubuntu-22.04-web", {"name": "x" * 129}, ReasonCode.INVALID_NAME, "IMG.0002"),
        ("ubuntu-22.04-web", {"description": "a <b>"}, ReasonCode.INVALID_DESCRIPTION, "IMG.0054"),
        ("ubuntu-22.04-web", {"description": "d" * 1025}, ReasonCode.INVALID_DESCRIPTION, "IMG.0004"),
        ("ubuntu-22.04-web", {"cmk_id": MISSING_ID}, ReasonCode.KEY_NOT_FOUND, "IMG.0095"),
        ("ubuntu-22.04-web", {"cmk_id": "disabled-key"}, ReasonCode.KEY_DISABLED, "IMG.0097"),
    ],
)
def test_each_refusal_maps_to_its_reason(
    client: ImsClient, source: str | None, fields: dict[str, str], reason: ReasonCode, code: str | None
) -> None:
    image_id = _by_name(client, source).id if source else MISSING_ID
    request = {"name": "refused copy", **fields}
    if request.get("cmk_id") == "disabled-key":
        key = client.find_key("disabled-key")
        assert key is not None and not key.enabled
        request["cmk_id"] = key.key_id
    with pytest.raises(ImsRefusedError) as info:
        client.copy_image(image_id, **request)
    assert info.value.reason is reason
    if code is not None:
        assert info.value.code == code
    assert info.value.endpoint == "copy" and info.value.request_id


def test_quota_exceeded(start_simulator: SimulatorFactory) -> None:
    sim = _start(start_simulator, copy_seconds=0.2, image_quota=10)  # the default catalogue holds 10 images
    with _client(sim) as client, pytest.raises(ImsRefusedError) as info:
        client.copy_image(_by_name(client, "ubuntu-22.04-web").id, name="one too many")
    assert info.value.reason is ReasonCode.QUOTA_EXCEEDED and info.value.code == "IMG.0015"


def test_the_job_limit_is_throttling(start_simulator: SimulatorFactory) -> None:
    sim = _start(start_simulator, copy_seconds=30, job_limit=1)
    with _client(sim) as client:
        source = _by_name(client, "ubuntu-22.04-web").id
        client.copy_image(source, name="first")
        with pytest.raises(ThrottledError) as info:
            client.copy_image(source, name="second")
    assert info.value.code == "IMG.0060" and info.value.status_code == 400


# -- the receiving side of a share (ims-contract.md §12) ---------------------------------------------------------


def test_a_member_accepts_lists_and_copies_a_share_under_its_own_key(start_simulator: SimulatorFactory) -> None:
    friend_project = "0123456789abcdef0123456789abcdef"
    sim = _start(
        start_simulator, project_ids=[SIMULATOR_PROJECT_ID, friend_project], copy_seconds=0.3, member_job_seconds=0.1
    )
    friend_account = _account(sim).model_copy(update={"project_id": friend_project})
    with _client(sim) as owner, ImsClient(friend_account, connect_timeout=2.0, read_timeout=5.0) as friend:
        image = _by_name(owner, "debian-12-base")
        assert _wait_for_job(owner, owner.add_members([image.id], [friend_project])).succeeded
        assert [i.id for i in friend.shared_images("pending")] == [image.id]
        assert list(friend.shared_images()) == [] and list(owner.shared_images()) == []  # owner's own: left out
        with pytest.raises(ImsRefusedError) as early:
            friend.copy_shared_image(image.id, name="too early")
        assert early.value.reason is ReasonCode.SHARE_NOT_ACCEPTED
        accepted = _wait_for_job(friend, friend.update_member_status([image.id], "accepted"))
        assert (accepted.succeeded, accepted.job_type) == (True, "imsUpdateImageMembersJob")
        assert [(r.image_id, r.project_id) for r in accepted.entities.results] == [(image.id, friend_project)]
        assert [i.id for i in friend.shared_images()] == [image.id]
        with pytest.raises(ImsRefusedError) as enterprise:
            friend.copy_image(image.id, name="ep", enterprise_project_id="b2f3c4d5-0000-4000-8000-000000000001")
        assert enterprise.value.reason is ReasonCode.ENTERPRISE_PROJECT_REFUSED
        key = friend.find_key("app-key")
        assert key is not None
        job = _wait_for_job(friend, friend.copy_shared_image(image.id, name="golden", cmk_id=key.key_id))
        copy = friend.get_image(job.image_id or "")
        assert copy is not None and (copy.owner, copy.cmk_id, copy.status) == (friend_project, key.key_id, "active")
        # The owner deletes the image: the share is gone, the member's own copy stays.
        httpx.post(f"{sim.url}/_sim/images/delete", json={"image_ids": [image.id]}, timeout=5).raise_for_status()
        assert list(friend.shared_images()) == [] and friend.get_image(image.id) is None
        with pytest.raises(ImsRefusedError) as gone:
            friend.copy_shared_image(image.id, name="too late")
        assert gone.value.reason is ReasonCode.IMAGE_NOT_FOUND
        assert friend.get_image(copy.id) == copy


# -- limits and faults -----------------------------------------------------------------------------------------


def test_the_gateway_rate_limit_is_throttling(start_simulator: SimulatorFactory) -> None:
    sim = _start(start_simulator, request_rate=2)
    throttled: list[ThrottledError] = []
    with _client(sim) as client:
        for _ in range(20):
            try:
                client.get_image(MISSING_ID)
            except ThrottledError as exc:
                throttled.append(exc)
    assert throttled, "20 quick calls at 2 requests/s should meet the gateway limit"
    assert {(e.status_code, e.code) for e in throttled} == {(429, "APIGW.0308")}
    assert all(e.endpoint == "show_image" for e in throttled)


def test_a_hang_is_unavailable_within_the_read_timeout(start_simulator: SimulatorFactory) -> None:
    sim = _start(start_simulator, hang_rate=1, hang_seconds=30)
    with _client(sim, read_timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(CloudUnavailableError) as info:
            client.get_image(MISSING_ID)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert info.value.endpoint == "show_image"


def test_quota_counts_the_project_private_images(client: ImsClient) -> None:
    quota = client.get_quota()
    private = [image for image in client.iter_images(**{"__imagetype": "private"}) if image.status != "killed"]
    assert quota.used == len(private) and quota.quota >= quota.used
