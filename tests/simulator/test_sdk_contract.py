"""The official Huawei Cloud Python SDK (huaweicloudsdkims, a dev extra) against a real two-region simulator:
a client written from the public API reference must not tell the simulator from IMS on these calls. Each call
goes through the SDK's own signing, serialisation and response models, over HTTP on loopback; no network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

ims = pytest.importorskip("huaweicloudsdkims.v2")
core_auth = pytest.importorskip("huaweicloudsdkcore.auth.credentials")
core_exceptions = pytest.importorskip("huaweicloudsdkcore.exceptions.exceptions")
core_http = pytest.importorskip("huaweicloudsdkcore.http.http_config")

NORTH = "cn-north-4"
SOUTH = "cn-south-1"
OWNER = "ac234de25c6741d2b1273da49eea1b9e"
FRIEND = "0123456789abcdef0123456789abcdef"
STRANGER = "fedcba9876543210fedcba9876543210"
ENTERPRISE_PROJECT = "b2f3c4d5-0000-4000-8000-000000000001"


def sdk_client(endpoint: str, project_id: str) -> Any:
    config = core_http.HttpConfig.get_default_config()
    config.timeout = (5, 30)
    credentials = core_auth.BasicCredentials("AKEXAMPLE", "SKEXAMPLE", project_id)
    return (
        ims.ImsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([endpoint])
        .build()
    )


@pytest.fixture(scope="module")
def clouds(module_regions_sim: Callable[..., Any]) -> Any:
    """One process for the module: each test makes its own images and names them apart."""
    return module_regions_sim(
        [NORTH, SOUTH],
        "--copy-seconds",
        "0.5",
        "--member-job-seconds",
        "0.2",
        "--project-id",
        OWNER,
        "--project-id",
        FRIEND,
        "--project-id",
        STRANGER,
    )


def wait_job(client: Any, job_id: str, waiter: Callable[..., Any]) -> Any:
    def done() -> Any:
        job = client.show_job(ims.ShowJobRequest(job_id=job_id))
        return job if job.status in ("SUCCESS", "FAIL") else None

    return waiter(done, timeout=20, interval=0.1, what=f"job {job_id}")


def image_named(client: Any, name: str) -> Any:
    (image,) = client.list_images(ims.ListImagesRequest(name=name)).images
    return image


def test_cross_region_copy_job_and_destination_image(clouds: Any, waiter: Callable[..., Any]) -> None:
    north = sdk_client(clouds.regions[NORTH]["endpoint"], clouds.regions[NORTH]["project_id"])
    south = sdk_client(clouds.regions[SOUTH]["endpoint"], clouds.regions[SOUTH]["project_id"])
    source = image_named(north, "debian-12-base")
    body = ims.CopyImageCrossRegionRequestBody(
        name="sdk-cross", description="by the SDK", region=SOUTH, project_name=SOUTH, agency_name="ims_admin_agency"
    )
    response = north.copy_image_cross_region(ims.CopyImageCrossRegionRequest(image_id=source.id, body=body))
    assert len(response.job_id) == 32
    job = wait_job(north, response.job_id, waiter)
    assert (job.status, job.job_type, job.error_code) == ("SUCCESS", "imsCrossRegionCopyImageJob", None)
    assert job.entities.image_name == "sdk-cross" and job.begin_time.endswith("Z") and job.end_time
    progress = north.show_job_progress(ims.ShowJobProgressRequest(job_id=response.job_id))
    assert progress.entities.process_percent == 1.0
    (copy,) = south.list_images(ims.ListImagesRequest(id=job.entities.image_id)).images
    assert copy.status == "active" and copy.name == "sdk-cross" and copy.owner == clouds.regions[SOUTH]["project_id"]
    assert copy.data_origin == f"image,{NORTH},{source.id}" and copy.image_size == source.image_size
    assert north.list_images(ims.ListImagesRequest(id=copy.id)).images == []
    # A refusal reaches the SDK as its exception, with the IMS code, message and request ID.
    encrypted = image_named(north, "euleros-encrypted")
    with pytest.raises(core_exceptions.ClientRequestException) as refused:
        north.copy_image_cross_region(ims.CopyImageCrossRegionRequest(image_id=encrypted.id, body=body))
    assert (refused.value.status_code, refused.value.error_code) == (400, "IMG.0143")
    assert refused.value.error_msg == "An encrypted image cannot be replicated cross regions."
    assert len(refused.value.request_id) == 32
    # The destination project does not know the job.
    with pytest.raises(core_exceptions.ClientRequestException) as unknown:
        south.show_job(ims.ShowJobRequest(job_id=response.job_id))
    assert unknown.value.status_code == 404


def test_in_region_copy_and_quota(clouds: Any, waiter: Callable[..., Any]) -> None:
    north = sdk_client(clouds.regions[NORTH]["endpoint"], clouds.regions[NORTH]["project_id"])
    key = clouds.region_client(NORTH).keys()["app-key"]["key_id"]
    source = image_named(north, "centos-7-app")
    body = ims.CopyImageInRegionRequestBody(name="sdk-rekeyed", cmk_id=key)
    response = north.copy_image_in_region(ims.CopyImageInRegionRequest(image_id=source.id, body=body))
    job = wait_job(north, response.job_id, waiter)
    assert job.status == "SUCCESS" and job.job_type == "imsCopyImageInRegionJob"
    assert image_named(north, "sdk-rekeyed").system__cmkid == key
    (quota,) = north.show_image_quota(ims.ShowImageQuotaRequest()).quotas.resources
    assert quota.type == "image" and quota.quota == 50 and quota.used >= 11


def test_members_add_list_accept(clouds: Any, waiter: Callable[..., Any]) -> None:
    owner_project = clouds.regions[NORTH]["project_id"]
    owner = sdk_client(clouds.regions[NORTH]["endpoint"], owner_project)
    friend = sdk_client(clouds.regions[NORTH]["endpoint"], FRIEND)
    image = image_named(owner, "ubuntu-22.04-web")
    added = owner.batch_add_members(
        ims.BatchAddMembersRequest(body=ims.BatchAddMembersRequestBody(images=[image.id], projects=[FRIEND]))
    )
    job = wait_job(owner, added.job_id, waiter)
    assert job.status == "SUCCESS" and job.job_type == "imsAddImageMembersJob"
    assert [(r.image_id, r.project_id, r.status) for r in job.entities.results] == [(image.id, FRIEND, "success")]
    members = owner.list_image_members(ims.ListImageMembersRequest(image_id=image.id))
    assert [(m.member_id, m.status, m.image_id) for m in members.members] == [(FRIEND, "pending", image.id)]
    assert members.schema == "/v2/schemas/members" and members.page_info.current_count == 1
    glance = owner.glance_list_image_members(ims.GlanceListImageMembersRequest(image_id=image.id))
    assert [m.member_id for m in glance.members] == [FRIEND]
    pending = friend.list_images(ims.ListImagesRequest(visibility="shared", member_status="pending")).images
    assert [i.id for i in pending] == [image.id] and pending[0].imagetype == "shared"
    accepted = friend.batch_update_members(
        ims.BatchUpdateMembersRequest(
            body=ims.BatchUpdateMembersRequestBody(images=[image.id], project_id=FRIEND, status="accepted")
        )
    )
    assert wait_job(friend, accepted.job_id, waiter).job_type == "imsUpdateImageMembersJob"
    shown = owner.show_image_member(ims.ShowImageMemberRequest(image_id=image.id, member_id=FRIEND))
    assert shown.status == "accepted"
    assert [i.id for i in friend.list_images(ims.ListImagesRequest(imagetype="shared")).images] == [image.id]
    encrypted = image_named(owner, "euleros-encrypted")
    with pytest.raises(core_exceptions.ClientRequestException) as refused:
        owner.batch_add_members(
            ims.BatchAddMembersRequest(body=ims.BatchAddMembersRequestBody(images=[encrypted.id], projects=[FRIEND]))
        )
    assert refused.value.error_code == "IMG.0098"


def refusal(call: Callable[[], Any]) -> Any:
    """The SDK's exception for a call IMS refuses."""
    with pytest.raises(core_exceptions.ClientRequestException) as refused:
        call()
    return refused.value


def test_only_the_member_accepts_then_copies_the_share_under_its_own_key(
    clouds: Any, waiter: Callable[..., Any]
) -> None:
    """ims-contract.md §12 through the SDK: the member accepts (no one else can), then copies the accepted share into
    a private image of its own, under its own key, in its IAM project; each refusal reaches the SDK with IMS's code."""
    endpoint, owner_project = clouds.regions[NORTH]["endpoint"], clouds.regions[NORTH]["project_id"]
    owner, friend, stranger = (sdk_client(endpoint, project) for project in (owner_project, FRIEND, STRANGER))
    (added,) = clouds.control("images", {"name": "sdk-golden-v{n}"}).json()["images"]
    image_id = added["id"]
    shared = owner.batch_add_members(
        ims.BatchAddMembersRequest(body=ims.BatchAddMembersRequestBody(images=[image_id], projects=[FRIEND]))
    )
    assert wait_job(owner, shared.job_id, waiter).status == "SUCCESS"

    def accept(client: Any, project_id: str) -> Any:
        body = ims.BatchUpdateMembersRequestBody(images=[image_id], project_id=project_id, status="accepted")
        return client.batch_update_members(ims.BatchUpdateMembersRequest(body=body))

    def copy(**fields: str) -> Any:
        body = ims.CopyImageInRegionRequestBody(**fields)
        return friend.copy_image_in_region(ims.CopyImageInRegionRequest(image_id=image_id, body=body))

    key = clouds.region_client(NORTH, FRIEND).keys()["app-key"]["key_id"]
    # Not a member, or not for itself: refused, and the member is still pending.
    assert refusal(lambda: accept(stranger, STRANGER)).error_code == "IMG.0027"
    assert refusal(lambda: accept(owner, FRIEND)).error_code == "IMG.0067"
    pending = owner.show_image_member(ims.ShowImageMemberRequest(image_id=image_id, member_id=FRIEND))
    assert pending.status == "pending"
    early = refusal(lambda: copy(name="sdk-early", cmk_id=key))
    assert (early.status_code, early.error_code) == (400, "IMG.0196")
    assert early.error_msg == "The image cannot be replicated because it is not accepted by the recipient."
    # The member accepts: a job, polled like a copy, with a result per image and project.
    job = wait_job(friend, accept(friend, FRIEND).job_id, waiter)
    assert (job.status, job.job_type) == ("SUCCESS", "imsUpdateImageMembersJob")
    assert [(r.image_id, r.project_id) for r in job.entities.results] == [(image_id, FRIEND)]
    member = owner.show_image_member(ims.ShowImageMemberRequest(image_id=image_id, member_id=FRIEND))
    assert member.status == "accepted"
    accepted = ims.ListImagesRequest(visibility="shared", member_status="accepted")
    assert image_id in [i.id for i in friend.list_images(accepted).images]
    (listed,) = friend.list_images(ims.ListImagesRequest(id=image_id)).images
    assert (listed.id, listed.owner, listed.imagetype) == (image_id, owner_project, "shared")
    # In an enterprise project it may not copy it (by the v1 call or the newer v2.1 one); in its IAM project it may,
    # under its own key.
    assert refusal(lambda: copy(name="sdk-ep", enterprise_project_id=ENTERPRISE_PROJECT)).error_code == "IMG.0155"
    in_ep = ims.CopyImageInRegionRequestBody(name="sdk-ep", enterprise_project_id=ENTERPRISE_PROJECT)
    safe_mode = ims.CopyImageInRegionInSafeModeRequest(image_id=image_id, body=in_ep)
    assert refusal(lambda: friend.copy_image_in_region_in_safe_mode(safe_mode)).error_code == "IMG.0155"
    copied = wait_job(friend, copy(name="sdk-golden-mine", cmk_id=key).job_id, waiter)
    assert (copied.status, copied.job_type) == ("SUCCESS", "imsCopyImageInRegionJob")
    (mine,) = friend.list_images(ims.ListImagesRequest(id=copied.entities.image_id)).images
    assert (mine.owner, mine.system__cmkid, mine.imagetype, mine.status) == (FRIEND, key, "private", "active")
    assert mine.data_origin == f"image,{NORTH},{image_id}"


def test_tags_and_the_list_filters(clouds: Any) -> None:
    north = sdk_client(clouds.regions[NORTH]["endpoint"], clouds.regions[NORTH]["project_id"])
    image = image_named(north, "centos-6-legacy")
    body = ims.BatchAddOrDeleteTagsRequestBody(
        action="create", tags=[ims.ResourceTag(key="team", value="web"), ims.ResourceTag(key="env", value="")]
    )
    north.batch_add_or_delete_tags(ims.BatchAddOrDeleteTagsRequest(image_id=image.id, body=body))
    tags = north.list_image_tags(ims.ListImageTagsRequest(image_id=image.id)).tags
    assert [(t.key, t.value) for t in tags] == [("team", "web"), ("env", "")]
    assert [i.id for i in north.list_images(ims.ListImagesRequest(tag="team=web")).images] == [image.id]
    too_many = ims.BatchAddOrDeleteTagsRequestBody(
        action="create", tags=[ims.ResourceTag(key=f"k{n}", value="v") for n in range(9)]
    )
    with pytest.raises(core_exceptions.ClientRequestException) as refused:
        north.batch_add_or_delete_tags(ims.BatchAddOrDeleteTagsRequest(image_id=image.id, body=too_many))
    assert refused.value.error_code == "IMG.0116"
    # The selector's filters, as the SDK sends them.
    listed = north.list_images(
        ims.ListImagesRequest(
            imagetype="private",
            status="active",
            os_type="Linux",
            platform="CentOS",
            disk_format="zvhd2",
            enterprise_project_id="0",
            created_at="lte:2024-03-05 08:00:00",
            sort_key="name",
            sort_dir="asc",
            limit=10,
        )
    ).images
    assert [i.name for i in listed] == ["centos-6-legacy", "centos-7-app"]
    assert listed[0].lazyloading == "false" and listed[0].tags == ["team=web", "env="]
    page = north.list_images(
        ims.ListImagesRequest(limit=2, marker=listed[0].id, sort_key="name", sort_dir="asc")
    ).images
    assert [i.name for i in page] == ["centos-7-app", "debian-12-base"]


def test_temporary_credentials_from_the_metadata_service(clouds: Any) -> None:
    """The SDK signs with a temporary AK/SK and its X-Security-Token; the simulator verifies both."""
    endpoint = clouds.regions[NORTH]["endpoint"]
    credential = clouds.plain.get("/openstack/latest/securitykey").json()["credential"]
    credentials = core_auth.BasicCredentials(credential["access"], credential["secret"], clouds.project)
    client = (
        ims.ImsClient.new_builder()
        .with_http_config(core_http.HttpConfig.get_default_config())
        .with_credentials(credentials.with_security_token(credential["securitytoken"]))
        .with_endpoints([endpoint])
        .build()
    )
    assert image_named(client, "debian-12-base").status == "active"
    credentials.with_security_token("not-the-one-issued")
    with pytest.raises(core_exceptions.ClientRequestException) as refused:
        client.list_images(ims.ListImagesRequest(name="debian-12-base"))
    assert (refused.value.status_code, refused.value.error_code) == (401, "APIGW.0301")
