"""The models read the contract's example records, including the loose types the services send."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from worker.ims.models import Image, Job, KmsKey, parse_time

# A copy record composed from the documented examples (docs/ims-api.md §5).
COPY_RECORD = {
    "schema": "/v2/schemas/image",
    "id": "30e55148-deb9-4923-adb9-91618de16ba0",
    "name": "ims_encrypted_copy3",
    "__description": "test copy",
    "status": "active",
    "visibility": "private",
    "__imagetype": "private",
    "__isregistered": "true",
    "owner": "ac234de25c6741d2b1273da49eea1b9e",
    "protected": False,
    "container_format": "bare",
    "disk_format": "zvhd2",
    "virtual_env_type": "FusionCompute",
    "__image_source_type": "uds",
    "min_disk": 40,
    "min_ram": 0,
    "max_ram": "",
    "size": 0,
    "virtual_size": 0,
    "checksum": "d41d8cd98f00b204e9800998ecf8427e",
    "__image_size": "2415919104",
    "__os_type": "Linux",
    "__os_bit": "64",
    "__os_version": "Ubuntu 22.04 server 64bit",
    "__platform": "Ubuntu",
    "__support_kvm": "true",
    "__lazyloading": "true",
    "__system__cmkid": "bd66288c-9081-460a-8227-4cbd0c814cb4",
    "__originalimagename": "465076de-dc36-4aec-80f5-ef9d8009428f",
    "__data_origin": "image,cn-north-4,465076de-dc36-4aec-80f5-ef9d8009428f",
    "__backup_id": "",
    "__productcode": "",
    "hw_firmware_type": "bios",
    "hw_vif_multiqueue_enabled": "true",
    "enterprise_project_id": "0",
    "tags": [],
    "file": "/v2/images/30e55148-deb9-4923-adb9-91618de16ba0/file",
    "self": "/v2/images/30e55148-deb9-4923-adb9-91618de16ba0",
    "created_at": "2024-11-06T06:14:27Z",
    "updated_at": "2024-11-06T06:16:38Z",
    "active_at": "2024-11-06T06:16:38Z",
}

# Huawei's verbatim "Updating an Image" example record ("__data_origin": null, no __lazyloading or __whole_image).
OTC_RECORD = {
    "file": "/v2/images/33ad552d-1149-471c-8190-ff6776174a00/file",
    "owner": "0b1e494e2660441a957313163095fe5c",
    "id": "33ad552d-1149-471c-8190-ff6776174a00",
    "size": 2,
    "self": "/v2/images/33ad552d-1149-471c-8190-ff6776174a00",
    "schema": "/v2/schemas/image",
    "status": "active",
    "tags": [],
    "visibility": "private",
    "name": "ims_test",
    "checksum": "99914b932bd37a50b983c5e7c90ae93b",
    "hw_vif_multiqueue_enabled": "true",
    "protected": False,
    "container_format": "bare",
    "min_ram": 0,
    "updated_at": "2015-12-08T02:30:49Z",
    "__os_bit": "64",
    "__os_version": "Ubuntu 14.04 server 64bit",
    "__description": "ims test",
    "disk_format": "vhd",
    "__isregistered": "true",
    "__platform": "Ubuntu",
    "__os_type": "Linux",
    "min_disk": 40,
    "virtual_env_type": "FusionCompute",
    "__image_source_type": "uds",
    "__imagetype": "private",
    "created_at": "2015-12-04T09:45:33Z",
    "virtual_size": 0,
    "__originalimagename": "33ad552d-1149-471c-8190-ff6776174a00",
    "__backup_id": "",
    "__productcode": "",
    "__image_size": "449261568",
    "__support_fc_inject": "true",
    "__data_origin": None,
    "hw_firmware_type": "bios",
}


def test_copy_record() -> None:
    image = Image.model_validate(COPY_RECORD)
    assert image.id == "30e55148-deb9-4923-adb9-91618de16ba0"
    assert image.image_type == "private"
    assert image.size_bytes == 2415919104
    assert image.min_disk == 40
    assert image.description == "test copy"
    assert image.is_encrypted and image.cmk_id == "bd66288c-9081-460a-8227-4cbd0c814cb4"
    assert image.supports_fast_create
    assert not image.is_full_ecs
    assert not image.is_iso
    assert image.created_at == datetime(2024, 11, 6, 6, 14, 27, tzinfo=timezone.utc)


def test_otc_record() -> None:
    image = Image.model_validate(OTC_RECORD)
    assert image.size_bytes == 449261568
    assert image.data_origin is None
    assert not image.whole_image and not image.is_full_ecs  # a missing flag means "not full-ECS"
    assert not image.supports_fast_create
    assert not image.is_encrypted


@pytest.mark.parametrize("flag", [True, "true", "True", "TRUE"])
def test_whole_image_flag_as_bool_or_string(flag: object) -> None:
    assert Image.model_validate({"id": "i", "__whole_image": flag}).is_full_ecs


@pytest.mark.parametrize("flag", [False, "false", "False", "", None])
def test_whole_image_false_values(flag: object) -> None:
    assert not Image.model_validate({"id": "i", "__whole_image": flag}).is_full_ecs


@pytest.mark.parametrize(
    "fields",
    [{"__data_origin": "server_backup,b7c1b6a8-5c1e-4e5d-9d62-0c3f5f7e9a11"}, {"__backup_id": "b7c1"}],
)
def test_full_ecs_clues_without_the_flag(fields: dict[str, str]) -> None:
    assert Image.model_validate({"id": "i", **fields}).is_full_ecs


@pytest.mark.parametrize("fields", [{"disk_format": "iso"}, {"disk_format": "ISO"}, {"virtual_env_type": "IsoImage"}])
def test_iso_markers(fields: dict[str, str]) -> None:
    assert Image.model_validate({"id": "i", **fields}).is_iso


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), ("false", False), ("False", False)])
def test_lazyloading_strings(value: str, expected: bool) -> None:
    assert Image.model_validate({"id": "i", "__lazyloading": value}).supports_fast_create is expected


def test_loose_sizes_and_numbers() -> None:
    assert Image.model_validate({"id": "i", "__image_size": ""}).size_bytes is None
    assert Image.model_validate({"id": "i", "__image_size": 1024}).size_bytes == 1024
    assert Image.model_validate({"id": "i", "min_disk": "40", "owner": 12}).min_disk == 40
    assert Image.model_validate({"id": "i", "__system__cmkid": ""}).is_encrypted is False


def test_models_can_be_built_by_field_name() -> None:
    image = Image(id="i", whole_image=True, size_bytes=5, cmk_id="k")
    assert image.is_full_ecs and image.is_encrypted and image.size_bytes == 5


def test_image_needs_an_id() -> None:
    with pytest.raises(ValidationError):
        Image.model_validate({"name": "x"})


def test_job_success_example() -> None:
    job = Job.model_validate(
        {
            "job_id": "9a175ac892fa13420193001c2e62205a",
            "job_type": "imsCopyImageInRegionJob",
            "begin_time": "2024-11-06T06:14:27.168Z",
            "end_time": "2024-11-06T06:16:38.446Z",
            "status": "SUCCESS",
            "error_code": None,
            "fail_reason": None,
            "entities": {"image_name": "test", "image_id": "30e55148-deb9-4923-adb9-91618de16ba0"},
        }
    )
    assert job.succeeded and job.finished and not job.failed
    assert job.image_id == "30e55148-deb9-4923-adb9-91618de16ba0"
    assert job.entities.image_name == "test"
    assert job.begin_time == datetime(2024, 11, 6, 6, 14, 27, 168000, tzinfo=timezone.utc)
    assert job.end_time == datetime(2024, 11, 6, 6, 16, 38, 446000, tzinfo=timezone.utc)


def test_job_running_example() -> None:
    job = Job.model_validate(
        {
            "status": "RUNNING",
            "entities": {},
            "job_id": "ff8080814dbd65d7014dbe0d84db0013",
            "job_type": "imsCopyImageInRegionJob",
            "begin_time": "2024-11-06T06:14:27.168Z",
            "end_time": "",
            "error_code": None,
            "fail_reason": None,
        }
    )
    assert job.status == Job.RUNNING and not job.finished
    assert job.end_time is None
    assert job.image_id is None


def test_job_fail_example() -> None:
    job = Job.model_validate(
        {
            "status": "FAIL",
            "job_id": "j",
            "job_type": "imsCopyImageInRegionJob",
            "begin_time": "04-Jun-2015 18:11:06:586",
            "end_time": "04-Jun-2015 18:13:07:001",
            "error_code": "IMG.XXXX",
            "fail_reason": "<message>",
            "entities": {},
        }
    )
    assert job.failed and job.finished
    assert job.error_code == "IMG.XXXX" and job.fail_reason == "<message>"
    assert job.begin_time == datetime(2015, 6, 4, 18, 11, 6, 586000, tzinfo=timezone.utc)


def test_job_progress_entities() -> None:
    job = Job.model_validate(
        {
            "status": "running",
            "job_id": "j",
            "entities": {"process_percent": 0.24, "current_task": "ImportImageTask:ObtainImageInfoTask"},
        }
    )
    assert job.status == Job.RUNNING
    assert job.entities.process_percent == pytest.approx(0.24)
    assert job.entities.current_task == "ImportImageTask:ObtainImageInfoTask"


def test_job_null_entities_and_odd_times() -> None:
    job = Job.model_validate({"status": "INIT", "entities": None, "begin_time": "not a time", "end_time": None})
    assert job.entities.image_id is None
    assert job.begin_time is None and job.end_time is None


def test_job_without_status_is_invalid() -> None:
    with pytest.raises(ValidationError):
        Job.model_validate({"job_id": "j", "entities": {}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-11-06T06:14:27Z", datetime(2024, 11, 6, 6, 14, 27, tzinfo=timezone.utc)),
        ("2024-11-06T08:14:27+02:00", datetime(2024, 11, 6, 6, 14, 27, tzinfo=timezone.utc)),
        ("2020-01-04T09:05:22.701000Z", datetime(2020, 1, 4, 9, 5, 22, 701000, tzinfo=timezone.utc)),
        ("04-Jun-2015 18:11:06:586", datetime(2015, 6, 4, 18, 11, 6, 586000, tzinfo=timezone.utc)),
        ("", None),
        ("   ", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_kms_key_example() -> None:
    key = KmsKey.model_validate(
        {
            "key_id": "0d0466b0-e727-4d9c-b35d-f84bb474a37f",
            "domain_id": "00074811d5c27c4f8d48bb91e4a1dcfd",
            "key_alias": "caseuirpr",
            "realm": "aaaa",
            "key_description": "123",
            "creation_date": "1502799822000",
            "scheduled_deletion_date": "",
            "key_state": "2",
            "default_key_flag": "0",
            "key_type": "1",
            "expiration_time": "1501578672000",
            "origin": "kms",
        }
    )
    assert key.enabled and not key.is_default
    assert key.key_alias == "caseuirpr"


@pytest.mark.parametrize(("state", "enabled"), [("1", False), ("2", True), (2, True), ("3", False), ("4", False)])
def test_kms_key_states(state: object, enabled: bool) -> None:
    assert KmsKey.model_validate({"key_id": "k", "key_state": state}).enabled is enabled


def test_default_key_flag() -> None:
    assert KmsKey.model_validate({"key_id": "k", "key_alias": "ims/default", "default_key_flag": "1"}).is_default
