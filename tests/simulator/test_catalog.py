"""The default catalogue, the catalogue file format and the generator."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.catalog import CatalogError, load_catalog
from simulator.catalog.__main__ import app as catalog_app
from simulator.catalog.generate import allocate, generate, parse_mix
from simulator.catalog.loader import project_catalog
from simulator.catalog.records import GIB, image_id_for, key_id_for
from simulator.replication import MAX_COPY_BYTES, image_bytes, is_full_ecs, is_iso

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"


def default_catalog(project: str = PROJECT):
    return project_catalog(load_catalog(None), project, "cn-north-4", "d" * 32)


def by_name(project: str = PROJECT) -> dict[str, dict]:
    return {image["name"]: image for image in default_catalog(project).images}


def test_default_images_exercise_every_rule() -> None:
    images = by_name()
    for name in ("ubuntu-22.04-web", "centos-7-app", "debian-12-base"):
        assert images[name]["status"] == "active" and images[name]["__lazyloading"] == "true"
        assert "__system__cmkid" not in images[name] and not is_full_ecs(images[name])
    assert images["centos-6-legacy"]["__lazyloading"] == "false"
    assert images["ecs-full-backup"]["__whole_image"] == "true"
    assert images["ecs-full-backup"]["__data_origin"].startswith("server_backup,")
    assert images["install-iso"]["disk_format"] == "iso" and images["install-iso"]["virtual_env_type"] == "IsoImage"
    assert is_iso(images["install-iso"])
    assert image_bytes(images["bigdata-200g"]) == 200 * GIB > MAX_COPY_BYTES
    assert image_bytes(images["edge-128g"]) == MAX_COPY_BYTES
    assert images["uploading-image"]["status"] == "saving" and "active_at" not in images["uploading-image"]
    keys = {key["key_alias"]: key for key in default_catalog().keys}
    assert images["euleros-encrypted"]["__system__cmkid"] == keys["old-key"]["key_id"]
    # The full-ECS flag is a string, and absent on other images (a documented choice).
    assert all("__whole_image" not in image for name, image in images.items() if name != "ecs-full-backup")


def test_default_records_have_the_documented_types() -> None:
    for image in default_catalog().images:
        assert isinstance(image["min_disk"], int) and isinstance(image["min_ram"], int)
        assert isinstance(image["max_ram"], str) and isinstance(image["__image_size"], str)
        assert image["__image_size"].isdigit() and isinstance(image["protected"], bool)
        assert image["owner"] == PROJECT and image["self"] == f"/v2/images/{image['id']}"
        assert image["file"] == f"/v2/images/{image['id']}/file" and image["schema"] == "/v2/schemas/image"
        assert image["__imagetype"] == "private" and image["visibility"] == "private"


def test_default_keys_cover_every_state() -> None:
    keys = {key["key_alias"]: key for key in default_catalog().keys}
    assert keys["ims/default"]["default_key_flag"] == "1" and keys["ims/default"]["key_state"] == "2"
    assert keys["app-key"]["key_state"] == "2" and keys["old-key"]["key_state"] == "2"
    assert keys["disabled-key"]["key_state"] == "3"
    assert keys["retiring-key"]["key_state"] == "4" and keys["retiring-key"]["scheduled_deletion_date"]
    assert all(key["default_key_flag"] == "0" for alias, key in keys.items() if alias != "ims/default")


def test_ids_are_deterministic_per_project_and_name() -> None:
    images, others = by_name(), by_name(OTHER)
    assert images["centos-7-app"]["id"] == image_id_for(PROJECT, "centos-7-app") == by_name()["centos-7-app"]["id"]
    assert others["centos-7-app"]["id"] != images["centos-7-app"]["id"]
    assert others["euleros-encrypted"]["__system__cmkid"] == key_id_for(OTHER, "old-key")


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return path


def test_file_entries_per_project_and_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "default": {"images": [{"name": "shared-base"}]},
            "projects": {
                OTHER: {
                    "images": [{"name": "own", "encrypted_with": "k1", "__image_size": 5, "id": "x-1"}],
                    "keys": [{"key_alias": "k1"}, {"key_alias": "k2", "key_state": "3"}],
                }
            },
        },
    )
    source = load_catalog(path)
    mine = project_catalog(source, PROJECT, "cn-north-4", "d" * 32)
    assert [i["name"] for i in mine.images] == ["shared-base"]
    assert [k["key_alias"] for k in mine.keys] == ["ims/default"]  # always present
    other = project_catalog(source, OTHER, "cn-north-4", "d" * 32)
    (own,) = other.images
    assert own["id"] == "x-1" and own["__image_size"] == "5"
    assert own["__system__cmkid"] == key_id_for(OTHER, "k1")
    assert [k["key_alias"] for k in other.keys] == ["ims/default", "k1", "k2"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "top level"),
        ({"images": []}, "top level"),
        ({"default": {"images": [{"title": "x"}]}}, "'name'"),
        ({"default": {"images": [{"name": "a"}, {"name": "a"}]}}, "duplicate image"),
        ({"default": {"images": [{"name": "a", "encrypted_with": "nope"}]}}, "unknown key"),
        ({"default": {"keys": [{"key_alias": "k", "key_state": "9"}]}}, "key_state"),
        ({"default": {"keys": [{"key_alias": "k"}, {"key_alias": "k"}]}}, "duplicate key"),
        ({"default": {"images": [{"name": "a", "min_disk": "forty"}]}}, "min_disk|invalid literal"),
    ],
)
def test_bad_files_are_refused_with_the_place_named(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        project_catalog(load_catalog(write(tmp_path, data)), PROJECT, "r", "d" * 32)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(path)


def test_allocation_meets_the_mix_exactly() -> None:
    counts = allocate(1000, parse_mix("ordinary=0.9,iso=0.02,full_ecs=0.03,oversized=0.05"))
    assert counts == {"ordinary": 900, "iso": 20, "full_ecs": 30, "oversized": 50}
    assert sum(allocate(7, {"ordinary": 1, "iso": 1, "legacy": 1}).values()) == 7


@pytest.mark.parametrize("mix", ["", "ordinary", "unknown=1", "iso=-1", "iso=0"])
def test_bad_mixes(mix: str) -> None:
    with pytest.raises(ValueError):
        parse_mix(mix)


def test_generated_catalogue_loads_and_is_reproducible(tmp_path: Path) -> None:
    mix = parse_mix("ordinary=0.5,encrypted=0.1,legacy=0.1,full_ecs=0.1,iso=0.1,oversized=0.05,not_active=0.05")
    data = generate(200, mix, seed=7)
    assert data == generate(200, mix, seed=7) and data != generate(200, mix, seed=8)
    records = project_catalog(load_catalog(write(tmp_path, data)), PROJECT, "r", "d" * 32).images
    assert len(records) == 200
    assert sum(is_iso(r) for r in records) == 20 and sum(is_full_ecs(r) for r in records) == 20
    assert sum("__system__cmkid" in r for r in records) == 20


def test_generator_command_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "big.json"
    result = CliRunner().invoke(
        catalog_app, ["generate", "--images", "50", "--mix", "ordinary=0.8,iso=0.2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["default"]["images"]) == 50
    result = CliRunner().invoke(catalog_app, ["generate", "--images", "5", "--mix", "bogus=1", "--out", str(out)])
    assert result.exit_code != 0 and "bogus" in result.output


def test_generated_variety_for_selectors(tmp_path: Path) -> None:
    mix = parse_mix("ordinary=0.6,encrypted=0.2,legacy=0.1,huge=0.1")
    start, end = datetime(2022, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, tzinfo=timezone.utc)
    options: dict[str, Any] = {
        "keys": ["old-key", "app-key", "team-key"],
        "platforms": {"Ubuntu": 2, "Windows": 1, "CentOS": 1},
        "tagged": 0.5,
        "created": (start, end),
    }
    plain, varied = generate(400, mix, seed=3), generate(400, mix, seed=3, **options)
    assert varied == generate(400, mix, seed=3, **options)
    # The options vary attributes only: the same names, kinds and order.
    assert [i["name"] for i in varied["default"]["images"]] == [i["name"] for i in plain["default"]["images"]]
    assert [k["key_alias"] for k in varied["default"]["keys"]][-1] == "team-key"
    project = project_catalog(load_catalog(write(tmp_path, varied)), PROJECT, "r", "d" * 32)
    key_of = {k["key_id"]: k["key_alias"] for k in project.keys}
    encrypted = Counter(key_of[r["__system__cmkid"]] for r in project.images if "__system__cmkid" in r)
    assert sorted(encrypted.values()) == [26, 27, 27] and set(encrypted) == {"old-key", "app-key", "team-key"}
    assert Counter(r["__platform"] for r in project.images) == {"Ubuntu": 200, "Windows": 100, "CentOS": 100}
    assert {r["__os_type"] for r in project.images if r["__platform"] == "Windows"} == {"Windows"}
    tagged = [r for r in project.images if r["tags"]]
    assert 150 < len(tagged) < 250 and all(1 <= len(r["tags"]) <= 3 for r in tagged)
    assert all(tag.split("=")[0] in ("team", "env", "cost-center") for r in tagged for tag in r["tags"])
    created = [r["created_at"] for r in project.images]
    assert min(created) >= "2022-01-01T00:00:00Z" and max(created) < "2024-01-01T00:00:00Z"
    assert len({c[:7] for c in created}) == 24  # every month of the range
    assert sum(r["__image_size"] == str(400 * GIB) for r in project.images) == 40


def test_catalogue_tags_reach_the_tags_api_and_the_filter(tmp_path: Path, app_sim: Callable[..., Any]) -> None:
    path = write(
        tmp_path,
        {
            "default": {
                "images": [
                    {"name": "a", "tags": {"team": "web", "env": ""}},
                    {"name": "b", "tags": ["team=api", "solo"]},
                    {"name": "c"},
                ]
            }
        },
    )
    client = app_sim(catalog=path).client()
    a = client.image_named("a")
    assert a["tags"] == ["team=web", "env="] and client.image_named("b")["tags"] == ["team=api", "solo="]
    listed = client.get(f"/v2/{client.project}/images/{a['id']}/tags").json()["tags"]
    assert listed == [{"key": "team", "value": "web"}, {"key": "env", "value": ""}]
    assert [i["name"] for i in client.images(tag="team=api")] == ["b"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("team", "tags are"),
        ({"k" * 37: "v"}, "tag key"),
        ({"k": "v" * 44}, "value"),
        ([f"k{n}=v" for n in range(11)], "at most 10"),
        (["a=1", "a=2"], "each key once"),
    ],
)
def test_bad_catalogue_tags(tmp_path: Path, tags: object, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        project_catalog(
            load_catalog(write(tmp_path, {"default": {"images": [{"name": "x", "tags": tags}]}})),
            PROJECT,
            "r",
            "d" * 32,
        )


def test_generator_command_options(tmp_path: Path) -> None:
    out = tmp_path / "varied.json"
    args = [
        "generate",
        "--images",
        "60",
        "--mix",
        "ordinary=1,encrypted=1",
        "--keys",
        "old-key,new-key",
        "--platforms",
        "Red Hat=1,Oracle Linux=1",
        "--tagged",
        "1",
        "--from",
        "2023-06-01",
        "--to",
        "2023-07-01",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(catalog_app, args)
    assert result.exit_code == 0, result.output
    images = json.loads(out.read_text())["default"]["images"]
    assert {i["__platform"] for i in images} == {"Red Hat", "Oracle Linux"} and all(i["tags"] for i in images)
    assert {i["encrypted_with"] for i in images if "encrypted_with" in i} == {"old-key", "new-key"}
    assert all(i["created_at"].startswith("2023-06") for i in images)
    for bad in (
        ["--platforms", "Plan9=1"],
        ["--from", "2023-06-01"],
        ["--from", "2023-06-02", "--to", "2023-06-01"],
        ["--keys", ","],
    ):
        result = CliRunner().invoke(catalog_app, ["generate", "--images", "5", "--out", str(out), *bad])
        assert result.exit_code == 2, bad
