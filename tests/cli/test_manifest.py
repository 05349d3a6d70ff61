"""Manifests: every bad row reported by the line it starts on, good rows kept, whole-file problems refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.manifest import ManifestError, parse_manifest, read_manifest, write_manifest
from worker.domain.spec import ItemSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMG = "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1"


def test_csv_rows_keep_their_line_numbers() -> None:
    text = (
        "image_id,name,kms_key\n"
        f"{IMG},ok,\n"  # line 2
        "not-a-uuid,x,\n"  # line 3
        "\n"  # line 4: blank, skipped
        f'{IMG},"two\nlines",\n'  # lines 5-6: bad name (newline), reported at 5
        f"{IMG},fine,app-key,extra\n"  # line 7: one cell too many
        f"{IMG},,ims/default\n"  # line 8
    )
    manifest = parse_manifest(text, "csv")
    assert [(r.line, r.spec.name, r.spec.kms_key) for r in manifest.rows] == [(2, "ok", None), (8, None, "ims/default")]
    assert [(e.line, e.image_id) for e in manifest.errors] == [(3, "not-a-uuid"), (5, IMG), (7, None)]
    assert manifest.errors[0].message.startswith("image_id: ")
    assert str(manifest.errors[2]) == "line 7: has 4 cells but the header has 3 columns"


def test_csv_with_a_bom_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(f"\ufeffimage_id,description\n{IMG},\n", encoding="utf-8")
    manifest = read_manifest(path)
    assert manifest.rows[0].spec == ItemSpec(image_id=IMG)


@pytest.mark.parametrize("header", ["image_id,kms-key", "name,kms_key"])
def test_csv_header_problems_refuse_the_file(header: str) -> None:
    with pytest.raises(ManifestError, match="line 1: "):
        parse_manifest(f"{header}\n{IMG},x\n", "csv", "m.csv")


def test_json_items_keep_their_line_numbers() -> None:
    text = (
        '{"items": [\n'
        f'  {{"image_id": "{IMG}"}},\n'  # line 2
        '  {"image_id": "x",\n'  # line 3
        '   "name": "y"},\n'
        '  "just a string",\n'  # line 5
        f'  {{"image_id": "{IMG}", "colour": "red"}}\n'  # line 6
        "]}\n"
    )
    manifest = parse_manifest(text, "json")
    assert [r.line for r in manifest.rows] == [2]
    assert [str(e) for e in manifest.errors] == [
        "line 3: image_id: must be an image ID in UUID form",
        "line 5: must be an object with at least an image_id",
        "line 6: colour: is not a known field",
    ]


def test_a_row_may_not_set_its_own_line() -> None:
    manifest = parse_manifest(f'[\n{{"image_id": "{IMG}", "line": 9}}\n]', "json")
    assert not manifest.rows
    assert [str(e) for e in manifest.errors] == ["line 2: line: is not a manifest field (imsrep sends each row's line)"]


def test_json_list_form() -> None:
    manifest = parse_manifest(f'[\n{{"image_id": "{IMG}", "kms_key": "app-key"}}\n]', "json")
    assert [(r.line, r.spec.kms_key) for r in manifest.rows] == [(2, "app-key")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[\n{"image_id": 1},\n{', "line 3: invalid JSON"),
        ('{"items": [], "defaults": {}}', "one key, 'items'"),
        ('{"items": 3}', "must be a JSON list"),
        ("[]", "no items"),
    ],
)
def test_json_file_problems(text: str, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(text, "json")


def test_format_follows_the_extension_or_the_content(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f'[{{"image_id": "{IMG}"}}]')
    (tmp_path / "b.txt").write_text(f"image_id\n{IMG}\n")
    assert len(read_manifest(tmp_path / "a.txt").rows) == len(read_manifest(tmp_path / "b.txt").rows) == 1
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "missing.csv")


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_write_then_read_round_trips(tmp_path: Path, suffix: str) -> None:
    specs = [
        ItemSpec(image_id=IMG),
        ItemSpec(image_id=IMG, name="web golden", description='say "hi", twice', kms_key="ims/default", account="prod"),
    ]
    path = tmp_path / f"m{suffix}"
    write_manifest(path, specs)
    assert [r.spec for r in read_manifest(path).rows] == specs


def test_a_written_manifest_keeps_cells_that_start_like_a_formula(tmp_path: Path) -> None:
    # Unlike exported results (no leading '): imsrep reads its manifests back, and they must say what was asked.
    spec = ItemSpec(image_id=IMG, name="-web", description="=1+2", kms_key="-key", tags={"@k": "+v"})
    write_manifest(tmp_path / "m.csv", [spec])
    assert [r.spec for r in read_manifest(tmp_path / "m.csv").rows] == [spec]


def test_the_example_manifests_are_valid_and_agree() -> None:
    csv_rows = read_manifest(EXAMPLES / "demo-manifest.csv")
    json_rows = read_manifest(EXAMPLES / "demo-manifest.json")
    assert not csv_rows.errors and not json_rows.errors
    assert [r.spec for r in csv_rows.rows] == [r.spec for r in json_rows.rows]


def test_cross_region_share_and_tag_columns(tmp_path) -> None:
    image = "0d944950-f21f-5d2f-93dd-72353bf37a89"
    friend = "0123456789abcdef0123456789abcdef"
    text = (
        "image_id,target_region,target_project,agency,share_with,tags,provenance\n"
        f"{image},cn-south-1,,ims_admin_agency,,team=web; env=,true\n"
        f"{image},,,,{friend};{'f' * 32},,\n"
        f"{image},,,,,team,\n"
        f"{image},cn-south-1,,,,,\n"
    )
    manifest = parse_manifest(text, "csv")
    (cross, shared, plain) = [row.spec for row in manifest.rows]
    assert cross.target_region == "cn-south-1" and cross.agency == "ims_admin_agency" and cross.provenance is True
    assert cross.tags == {"team": "web", "env": ""} and cross.share_with is None
    assert shared.share_with == [friend, "f" * 32]
    assert plain.target_region == "cn-south-1"
    (bad,) = manifest.errors
    assert bad.line == 4 and "tags: 'team' is not key=value" in bad.message
    keyed = parse_manifest(f"image_id,kms_key,target_region\n{image},app-key,cn-south-1\n", "csv")
    assert keyed.errors[0].message.startswith("kms_key: a cross-region copy cannot be encrypted")
    for name in ("m.csv", "m.json"):
        path = tmp_path / name
        write_manifest(path, [cross, shared])
        again = read_manifest(path)
        assert [row.spec for row in again.rows] == [cross, shared] and not again.errors
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert header[6:] == ["target_region", "agency", "share_with", "tags", "provenance"] and len(header) == 11


def test_identical_rows_are_found_by_line() -> None:
    other = "1d0e3b8a-5c2f-4a6e-9b7d-2f4c6e8a0b1c"
    text = (
        "image_id,name,account\n"
        f"{IMG},web,\n"  # 2
        f"{IMG},web,\n"  # 3: same image, same name
        f"{IMG},other-name,\n"  # 4
        f"{IMG.upper()},,\n"  # 5: same image (IDs are case-insensitive), default name
        f"{IMG},,\n"  # 6
        f"{other},web,\n"  # 7: another image
        f"{IMG},web,prod\n"  # 8: another account
    )
    assert parse_manifest(text, "csv").duplicates() == [[2, 3], [5, 6]]


def test_rows_that_differ_in_any_field_of_the_copy_are_not_duplicates() -> None:
    p1, p2 = "a" * 32, "b" * 32
    base = {"image_id": IMG, "name": "web"}
    rows = [
        base,  # 2
        {**base, "target_region": "cn-south-1"},  # 3: another region
        {**base, "target_region": "cn-south-1", "agency": "other_agency"},  # 4: the same copy, made by another agency
        {**base, "target_region": "cn-south-1", "target_project": "cn-south-1_apps"},  # 5: another project
        {**base, "kms_key": "app-key"},  # 6: another key
        {**base, "description": "d"},  # 7
        {**base, "enterprise_project_id": "0"},  # 8
        {**base, "tags": {"team": "web", "env": "prod"}},  # 9
        {**base, "tags": {"env": "prod", "team": "web"}},  # 10: the same tags
        {**base, "tags": {"team": "db"}},  # 11
        {**base, "share_with": [p1, p2]},  # 12
        {**base, "share_with": [p2, p1]},  # 13: the same projects
        {**base, "share_with": [p1]},  # 14
        {**base, "provenance": False},  # 15
        base,  # 16
        {**base, "distribute": [{"account": "a"}, {"account": "b", "tags": {"t": "1"}}]},  # 17
        {**base, "distribute": [{"account": "b", "tags": {"t": "1"}}, {"account": "a"}]},  # 18: the same receivers
        {**base, "distribute": [{"account": "a"}]},  # 19
    ]
    text = "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]"
    assert parse_manifest(text, "json").duplicates() == [[2, 16], [3, 4], [9, 10], [12, 13], [17, 18]]


def test_a_deeply_nested_json_manifest_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match="nested too deeply"):
        read_manifest(path)
