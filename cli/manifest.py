"""Reading manifests: CSV or JSON lists of items, each row checked on its own and reported by its line number.

A CSV manifest has a header of item fields (``image_id`` required; ``name``, ``description``, ``kms_key``,
``enterprise_project_id``, ``account``, ``target_region``, ``target_project``, ``agency``, ``share_with``, ``tags``,
``provenance`` optional; an empty cell means "the default"). In a CSV cell ``share_with`` lists project IDs
separated by ``;`` and ``tags`` is ``key=value`` pairs separated by ``;`` (``team=web;env=prod``). A JSON manifest is
a list of item objects (``share_with`` a list, ``tags`` an object), or ``{"items": [...]}``. Bad rows do not stop
the good ones: the caller gets both.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.domain.spec import ItemSpec, cross_field_problems

FIELDS = (
    "image_id",
    "name",
    "description",
    "kms_key",
    "enterprise_project_id",
    "account",
    "target_region",
    "target_project",
    "agency",
    "share_with",
    "tags",
    "provenance",
)
_BASIC_COLUMNS = 6
_SEPARATOR = ";"  # between the projects of a share_with cell and the pairs of a tags cell


def _list_cell(text: str) -> list[str]:
    return [part.strip() for part in text.split(_SEPARATOR) if part.strip()]


def _tags_cell(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in _list_cell(text):
        key, equals, value = pair.partition("=")
        if not equals:
            raise ValueError(f"tags: {pair!r} is not key=value (pairs are separated by '{_SEPARATOR}')")
        tags[key.strip()] = value.strip()
    return tags


# CSV cells that hold a list or a mapping: how they are read, and written back.
_CELLS = {
    "share_with": (_list_cell, _SEPARATOR.join),
    "tags": (_tags_cell, lambda tags: _SEPARATOR.join(f"{k}={v}" for k, v in tags.items())),
}


class ManifestError(ValueError):
    """The file as a whole cannot be read (missing, malformed, wrong header); no row can be trusted."""


@dataclass(frozen=True)
class ManifestRow:
    line: int
    spec: ItemSpec


@dataclass(frozen=True)
class RowError:
    line: int
    message: str
    image_id: str | None = None  # as written in the row, when it has one

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class _BadRow:
    """A row the reader could already tell is broken (too many CSV cells)."""

    message: str


@dataclass
class Manifest:
    rows: list[ManifestRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    digest: str = ""  # SHA-256 of the text: what a submission's idempotency keys derive from

    def add(self, line: int, raw: Any) -> None:
        if isinstance(raw, _BadRow):
            self.errors.append(RowError(line, raw.message))
            return
        if not isinstance(raw, dict):
            self.errors.append(RowError(line, "must be an object with at least an image_id"))
            return
        image_id = raw.get("image_id")
        shown = image_id if isinstance(image_id, str) else None
        if "line" in raw:  # an item field, but the submitter's to fill: each row is sent with its own line
            self.errors.append(RowError(line, "line: is not a manifest field (imsrep sends each row's line)", shown))
            return
        try:
            spec = ItemSpec.model_validate(raw)
        except ValidationError as exc:
            self.errors.append(RowError(line, _problems(exc), shown))
            return
        # The rules between fields that need no server settings (a key with target_region, say).
        if problems := cross_field_problems(spec, None, provenance_default=False):
            self.errors.append(RowError(line, "; ".join(f"{f}: {rule}" for f, rule in problems), shown))
            return
        self.rows.append(ManifestRow(line, spec))

    def duplicates(self) -> list[list[int]]:
        """Lines of rows that ask for the same copy (``_copy_key``), each group in order: submitted together, they
        would make the same copy twice."""
        groups: dict[tuple[object, ...], list[int]] = {}
        for row in self.rows:
            groups.setdefault(_copy_key(row.spec), []).append(row.line)
        return [lines for lines in groups.values() if len(lines) > 1]


def _copy_key(spec: ItemSpec) -> tuple[object, ...]:
    """What the copy a row asks for is: every field of the row but the agency, which only says who makes a
    cross-region copy. Tags, the projects it is shared with and the receivers it is distributed to compare as sets."""
    fields = spec.model_dump(exclude={"agency"})
    fields["share_with"] = frozenset(spec.share_with or ())
    fields["tags"] = frozenset((spec.tags or {}).items())
    fields["distribute"] = frozenset(receiver.model_dump_json() for receiver in spec.distribute or ())
    return tuple(fields.items())


_RULES = {"missing": "is required", "extra_forbidden": "is not a known field"}


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        rule = _RULES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {rule}")
    return "; ".join(parts)


def read_manifest(path: Path) -> Manifest:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    return parse_manifest(text, _format_of(path, text), str(path))


def _format_of(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".json"):
        return suffix[1:]
    return "json" if text.lstrip()[:1] in ("[", "{") else "csv"


def parse_manifest(text: str, fmt: str, source: str = "manifest") -> Manifest:
    manifest = Manifest(digest=hashlib.sha256(text.encode()).hexdigest())
    entries = _csv_rows(text, source) if fmt == "csv" else _json_rows(text, source)
    for line, raw in entries:
        manifest.add(line, raw)
    if not manifest.rows and not manifest.errors:
        raise ManifestError(f"{source}: no items")
    return manifest


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, object] | _BadRow]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ManifestError(f"{source}: empty file")
    columns = [c.strip() for c in header]
    unknown = [c for c in columns if c not in FIELDS]
    if unknown or "image_id" not in columns:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "no image_id column"
        raise ManifestError(f"{source}: line 1: {problem}; the columns are {', '.join(FIELDS)}")
    end = reader.line_num
    for cells in reader:
        start, end = end + 1, reader.line_num  # a quoted cell may span lines: report where the row starts
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(columns):
            yield start, _BadRow(f"has {len(cells)} cells but the header has {len(columns)} columns")
            continue
        row: dict[str, object] = {c: (cell if cell.strip() else None) for c, cell in zip(columns, cells, strict=False)}
        try:
            for col, (read, _) in _CELLS.items():
                if isinstance(row.get(col), str):
                    row[col] = read(str(row[col]))
        except ValueError as exc:
            yield start, _BadRow(str(exc))
            continue
        yield start, row


def _json_rows(text: str, source: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    try:
        pos = _skip_space(text, 0)
        if text.startswith("{", pos):
            pos = _items_array(decoder, text, pos, source)
        if not text.startswith("[", pos):
            raise ManifestError(f"{source}: must be a JSON list of items or an object with an 'items' list")
        # Walk the list element by element so each item keeps the line it starts on.
        pos = _skip_space(text, pos + 1)
        if text.startswith("]", pos):
            return
        while True:
            value, end = decoder.raw_decode(text, pos)
            yield text.count("\n", 0, pos) + 1, value
            pos = _skip_space(text, end)
            if text.startswith("]", pos):
                return
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("expected ',' or ']'", text, pos)
            pos = _skip_space(text, pos + 1)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{source}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ManifestError(f"{source}: invalid JSON: nested too deeply") from None


def _items_array(decoder: json.JSONDecoder, text: str, pos: int, source: str) -> int:
    """The position of the ``items`` list inside ``{"items": [...]}`` (its other keys are refused)."""
    obj, _ = decoder.raw_decode(text, pos)
    if set(obj) != {"items"}:
        raise ManifestError(f"{source}: an object manifest must have one key, 'items' (found {sorted(obj)})")
    pos = _skip_space(text, pos + 1)
    _, pos = decoder.raw_decode(text, pos)  # the only key is "items"
    pos = _skip_space(text, pos)
    return _skip_space(text, pos + 1)  # past the ':'


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def write_manifest(path: Path, specs: Sequence[ItemSpec]) -> None:
    """Write items as a manifest (CSV or JSON by extension), leaving out fields that are not set."""
    rows = [{k: v for k in FIELDS if (v := getattr(spec, k)) is not None} for spec in specs]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"items": rows}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    # Cells as they are, not through cli.csv_cells.neutralise as exported results are: a manifest is imsrep's input,
    # read back as written (the demo reads the one it writes), and a leading ' would change it (a name -web would
    # come back '-web, which IMS refuses).
    # The first six columns always, the others when a row uses them: an in-region manifest looks as it always did.
    used = [k for i, k in enumerate(FIELDS) if i < _BASIC_COLUMNS or any(k in row for row in rows)]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=used, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            cells = {k: _CELLS[k][1](v) if k in _CELLS else v for k, v in row.items()}
            writer.writerow({k: cells.get(k, "") for k in used})
