"""What Redis durability costs at ingest: time to store N items with ``RecordStore.create_batch`` (the API's one
round trip per batch) on a fresh Redis with no AOF, ``appendfsync everysec`` (the default here) and ``always``; with
``--replicas``, on a primary with one replica under Sentinel, without and with the replica's confirmation
(``IMSREP_REDIS_MIN_REPLICAS`` 0 and 1: ``WAIT`` after each batch).

Run by hand (not a test): ``.venv/bin/python tests/reliability/aof_cost.py [--items 10000] [--batch 1000]
[--replicas]``. Prints a Markdown table; the figures in docs/reliability.md come from it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from cli import services
from cli.processes import ManagedProcess, free_port, tcp_open
from cli.stack import LocalStack, SentinelSpec, StackOptions
from worker.data import NewItem, RecordStore, open_data_layer
from worker.domain.spec import ItemSpec

MODES = {"no AOF": ("no", "everysec"), "AOF everysec": ("yes", "everysec"), "AOF always": ("yes", "always")}


def _argv(base: list[str], appendonly: str, fsync: str) -> list[str]:
    """The project's Redis command line (cli.services) with its two persistence options set."""
    argv = list(base)
    argv[argv.index("--appendonly") + 1] = appendonly
    argv[argv.index("--appendfsync") + 1] = fsync
    return argv


def measure(appendonly: str, fsync: str, items: int, batch: int, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            (Path(tmp) / "data").mkdir()
            argv = _argv(services.redis("redis", "127.0.0.1", port, Path(tmp) / "data").argv, appendonly, fsync)
            proc = ManagedProcess("redis", argv, Path(tmp) / "redis.log").start()
            try:
                proc.wait_ready(lambda p=port: tcp_open("127.0.0.1", p), timeout=20)
                times.append(_ingest(open_data_layer(f"redis://127.0.0.1:{port}/0", "bench").records, items, batch))
            finally:
                proc.stop()
    return times


def _ingest(store: RecordStore, items: int, batch: int) -> float:
    batches = [
        [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in range(batch)] for _ in range(items // batch)
    ]
    started = time.perf_counter()
    for chunk in batches:
        store.create_batch(chunk)
    return time.perf_counter() - started


def measure_replicas(replicas: int, items: int, batch: int, runs: int) -> list[float]:
    """The same ingest on a primary with one replica (AOF everysec on both), confirmed by ``replicas`` of them."""
    times = []
    for _ in range(runs):
        with (
            tempfile.TemporaryDirectory() as tmp,
            LocalStack(StackOptions(state_dir=Path(tmp), sentinel=SentinelSpec(master="bench"))) as stack,
        ):
            stack.start_redis()
            target = stack.info.redis_target(min_replicas=replicas)
            times.append(_ingest(open_data_layer(target, "bench").records, items, batch))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replicas", action="store_true", help="a primary and a replica: without and with WAIT")
    args = parser.parse_args()
    print(f"{args.items} items in batches of {args.batch}, median of {args.runs} runs\n")
    if args.replicas:
        print("| Confirmed by replicas | seconds | items/s | vs none |")
        print("|---|---|---|---|")
        baseline = None
        for replicas in (0, 1):
            seconds = statistics.median(measure_replicas(replicas, args.items, args.batch, args.runs))
            baseline = baseline or seconds
            print(f"| {replicas} | {seconds:.2f} | {args.items / seconds:,.0f} | {seconds / baseline:.2f}x |")
        return
    print("| Redis persistence | seconds | items/s | vs no AOF |")
    print("|---|---|---|---|")
    baseline = None
    for label, (appendonly, fsync) in MODES.items():
        seconds = statistics.median(measure(appendonly, fsync, args.items, args.batch, args.runs))
        baseline = baseline or seconds
        print(f"| {label} | {seconds:.2f} | {args.items / seconds:,.0f} | {seconds / baseline:.2f}x |")


if __name__ == "__main__":
    main()
