"""The keyspace: one method per key, and the table in docs/architecture.md names every one of them."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from worker.data import keyspace
from worker.data.keyspace import Keyspace

DOC = Path(__file__).parents[3] / "docs" / "architecture.md"


def _documented(text: str) -> set[str]:
    return set(re.findall(r"`(P:[^`]+)`", text))


def test_every_key_is_in_the_architecture_table_and_the_module_docstring() -> None:
    keys = Keyspace("P")
    made = set()
    for name, method in inspect.getmembers(keys, inspect.ismethod):
        parameters = inspect.signature(method).parameters
        if name.startswith("_") or name in {"account_of", "slot_patterns"}:
            continue
        made.add(method(*(f"<{p}>" for p in parameters)))
    normalise = {
        "<item_id>": "<id>",
        "<batch_id>": "<id>",
        "<plan_id>": "<id>",
        "<message_id>": "<message id>",
        "<state>": "<state>",
    }
    for long, short in normalise.items():
        made = {k.replace(long, short) for k in made}
    made = {k.replace("lock:submit:<id>", "lock:submit:<item id>") for k in made}
    assert made == _documented(DOC.read_text()) == _documented(keyspace.__doc__ or "")


def test_every_key_starts_with_the_prefix() -> None:
    keys = Keyspace("someprefix")
    assert keys.item("x").startswith("someprefix:") and keys.workers() == "someprefix:workers"
    assert keys.account_of(keys.slots("acct-1")) == "acct-1"
    assert keys.account_of(keys.wait("acct-1:cross-region")) == "acct-1:cross-region"
