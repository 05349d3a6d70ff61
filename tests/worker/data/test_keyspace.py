"""The keyspace: one method per key, and the table in docs/architecture.md is the module's own."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from worker.data import keyspace
from worker.data.keyspace import Keyspace

DOC = Path(__file__).parents[3] / "docs" / "architecture.md"
HELPERS = {"pool_in_key", "pool_patterns", "broker_queue_lists", "waiting_queue"}  # read keys, or name kombu's


def _documented(text: str) -> list[str]:
    return re.findall(r"`(P[:.][^`]+)`", text)


def test_the_architecture_table_is_the_module_table_with_a_row_per_key_method() -> None:
    in_module = _documented(keyspace.__doc__ or "")
    assert _documented(DOC.read_text()) == in_module
    makers = [name for name, _ in inspect.getmembers(Keyspace, inspect.isfunction) if not name.startswith("_")]
    assert len(set(makers) - HELPERS) == len(in_module)


def test_every_key_starts_with_the_prefix() -> None:
    keys = Keyspace("someprefix")
    assert keys.item("x").startswith("someprefix:") and keys.workers() == "someprefix:workers"
    assert keys.pool_in_key(keys.slots("acct-1")) == "acct-1"
    assert keys.pool_in_key(keys.ring("a:cross-region")) == "a:cross-region"
