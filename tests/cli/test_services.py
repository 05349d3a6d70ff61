"""cli.services's files: what a reader of a private file may see while it is written."""

from __future__ import annotations

import contextlib
import stat
import threading
from pathlib import Path

from cli.services import private_file


def test_a_private_file_is_read_whole_or_not_at_all_while_it_is_rewritten(tmp_path: Path) -> None:
    # imsrep up writes stack.json while clients and tests poll for it: an empty or half-written file read as JSON was
    # a failure (CI, stop 38).
    path = tmp_path / "stack.json"
    texts = {("a" * 200_000), ("b" * 300_000)}
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            private_file(path, sorted(texts)[i % 2])
    finally:
        done.set()
        reader.join(timeout=30)
    assert seen and seen <= texts
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]  # no temporary file left beside it
