"""Submitting a manifest's good rows through the API, in chunks, and collecting each row's result.

Shared by ``imsrep submit`` and ``imsrep demo``. Rows the server refuses item by item (an account it does not know,
say) are reported by their manifest line like the rows refused locally, and the rest of the chunk still goes in.

With a ``key_base`` every chunk carries an ``Idempotency-Key`` derived from it (the manifest's content), the chunk
size and the chunk's position: a run that stopped anywhere (killed, network down, the API refusing a later chunk)
can simply be run again, and each chunk the API had accepted is answered with its batch instead of being stored a
second time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cli.api_client import ApiCallError, ApiClient
from cli.manifest import ManifestRow, RowError
from cli.results import INVALID, ItemResult
from config.settings import Settings
from worker.domain.spec import ItemSpec

# The API's default limit on items per batch; a server configured lower is matched with --chunk-size.
DEFAULT_CHUNK = Settings.model_fields["max_batch_items"].default


@dataclass(frozen=True)
class Chunk:
    """One accepted chunk: its position, the manifest lines it spans, its batch, and whether an earlier run had
    already submitted it (``replayed``: the API answered with that run's batch)."""

    number: int
    chunks: int
    first_line: int
    last_line: int
    batch_id: str
    items: int
    replayed: bool


@dataclass
class Submission:
    batch_ids: list[str] = field(default_factory=list)
    item_lines: dict[str, int] = field(default_factory=dict)  # item ID -> manifest line
    errors: list[RowError] = field(default_factory=list)  # rows the server refused
    chunks: list[Chunk] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the API said will not go as asked (over quota)

    @property
    def submitted(self) -> int:
        return len(self.item_lines)

    @property
    def replayed(self) -> int:
        """Items an earlier run had already submitted."""
        return sum(c.items for c in self.chunks if c.replayed)


def chunk_key(key_base: str, chunk_size: int, number: int) -> str:
    """The Idempotency-Key of one chunk: the same manifest cut the same way gives the same keys."""
    return f"{key_base}:{chunk_size}:{number}"


def submit_rows(
    client: ApiClient,
    rows: Sequence[ManifestRow],
    chunk_size: int = DEFAULT_CHUNK,
    *,
    key_base: str | None = None,
    batch: dict[str, str] | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> Submission:
    """Submit ``rows`` in chunks; ``on_chunk`` hears of each accepted chunk at once (so a run that is stopped
    has already said which batches it made)."""
    submission = Submission()
    total = -(-len(rows) // chunk_size)
    for number, start in enumerate(range(0, len(rows), chunk_size), 1):
        key = chunk_key(key_base, chunk_size, number) if key_base else None
        rows_ = list(rows[start : start + chunk_size])
        chunk = _submit_chunk(client, rows_, submission, key, (number, total), batch)
        if chunk is not None and on_chunk is not None:
            on_chunk(chunk)
    return submission


def _submit_chunk(
    client: ApiClient,
    chunk: list[ManifestRow],
    submission: Submission,
    key: str | None,
    position: tuple[int, int],
    batch: dict[str, str] | None,
) -> Chunk | None:
    try:
        accepted = client.submit(_specs(chunk), key, batch)
    except ApiCallError as exc:
        refused = _refused_rows(exc, chunk)
        if not refused:
            raise
        submission.errors += refused.values()
        chunk = [row for i, row in enumerate(chunk) if i not in refused]
        if not chunk:
            return None
        # The rest is another request, with a key of its own (the same one on every run: the refusals repeat).
        accepted = client.submit(_specs(chunk), f"{key}:rest" if key else None, batch)
    submission.batch_ids.append(accepted["batch_id"])
    submission.warnings += accepted.get("warnings") or []
    submission.item_lines.update(zip(accepted["item_ids"], (row.line for row in chunk), strict=True))
    done = Chunk(
        *position,
        chunk[0].line,
        chunk[-1].line,
        accepted["batch_id"],
        len(chunk),
        bool(accepted.get("replayed")),
    )
    submission.chunks.append(done)
    return done


def _specs(rows: list[ManifestRow]) -> list[ItemSpec]:
    """The rows as sent: each with its manifest line, which the API keeps on the item (for status --results)."""
    return [row.spec.model_copy(update={"line": row.line}) for row in rows]


def _refused_rows(exc: ApiCallError, chunk: list[ManifestRow]) -> dict[int, RowError]:
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
