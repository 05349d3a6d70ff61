"""Submitting a manifest's good rows through the API, in chunks, and collecting each row's result.

Shared by ``imsrep submit`` and ``imsrep demo``. Rows the server refuses item by item (an account it does not know,
say) are reported by their manifest line like the rows refused locally, and the rest of the chunk still goes in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cli.api_client import ApiClient, ApiError
from cli.manifest import ManifestRow, RowError
from cli.results import INVALID, ItemResult
from config.settings import Settings

# The API's default limit on items per batch; a server configured lower is matched with --chunk-size.
DEFAULT_CHUNK = Settings.model_fields["max_batch_items"].default


@dataclass
class Submission:
    batch_ids: list[str] = field(default_factory=list)
    item_lines: dict[str, int] = field(default_factory=dict)  # item ID -> manifest line
    errors: list[RowError] = field(default_factory=list)  # rows the server refused

    @property
    def submitted(self) -> int:
        return len(self.item_lines)


def submit_rows(client: ApiClient, rows: Sequence[ManifestRow], chunk_size: int = DEFAULT_CHUNK) -> Submission:
    submission = Submission()
    for start in range(0, len(rows), chunk_size):
        _submit_chunk(client, list(rows[start : start + chunk_size]), submission)
    return submission


def _submit_chunk(client: ApiClient, chunk: list[ManifestRow], submission: Submission) -> None:
    try:
        accepted = client.submit([row.spec for row in chunk])
    except ApiError as exc:
        refused = _refused_rows(exc, chunk)
        if not refused:
            raise
        submission.errors += refused.values()
        chunk = [row for i, row in enumerate(chunk) if i not in refused]
        if not chunk:
            return
        accepted = client.submit([row.spec for row in chunk])  # a second refusal is not item-specific: raise
    submission.batch_ids.append(accepted["batch_id"])
    submission.item_lines.update(zip(accepted["item_ids"], (row.line for row in chunk), strict=True))


def _refused_rows(exc: ApiError, chunk: list[ManifestRow]) -> dict[int, RowError]:
    """The rows a 422 names, by index in the chunk; empty when any problem concerns the request as a whole."""
    if exc.status != 422 or not exc.problems or any(p.get("index") is None for p in exc.problems):
        return {}
    refused: dict[int, RowError] = {}
    for problem in exc.problems:
        index = problem["index"]
        row = chunk[index]
        text = f"{problem.get('field')}: {problem.get('rule')}"
        earlier = refused.get(index)
        refused[index] = RowError(row.line, f"{earlier.message}; {text}" if earlier else text, row.spec.image_id)
    return refused


def collect_results(client: ApiClient, submission: Submission, bad_rows: Sequence[RowError]) -> list[ItemResult]:
    """Every row's verdict: the submitted items as the API shows them, the bad rows as ``invalid``."""
    results = [
        ItemResult.of(item, submission.item_lines.get(item["item_id"]))
        for batch_id in submission.batch_ids
        for item in client.items(batch_id)
    ]
    results += [
        ItemResult(line=e.line, item_id=None, image_id=e.image_id, state=INVALID, message=e.message)
        for e in [*bad_rows, *submission.errors]
    ]
    return results
