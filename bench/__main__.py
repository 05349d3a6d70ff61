"""``python -m bench``: run the performance scenarios against the local stack and write docs/performance.md.

Each scenario starts its own stack (embedded Redis, simulator, API, worker, beat, Flower) through ``LocalStack``,
so every figure comes from the processes a user runs. Run by hand; it takes several minutes at full size.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

from bench import report
from bench.options import BenchOptions
from bench.scenarios import SCENARIOS
from cli.stack import sigterm_as_interrupt

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"


def parse(argv: list[str]) -> tuple[argparse.Namespace, BenchOptions]:
    defaults = BenchOptions(workdir=Path())
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=DOC, help="markdown file to write (default: docs/performance.md)")
    parser.add_argument("--workdir", type=Path, help="state and logs (default: a temporary directory, removed)")
    for f in fields(BenchOptions):
        if f.name == "workdir":
            continue
        value = getattr(defaults, f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value, help=f"(default {value})")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    chosen = {f.name: getattr(args, f.name) for f in fields(BenchOptions) if f.name != "workdir"}
    return args, BenchOptions(workdir=Path(), **chosen)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, opts = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would bury the results
    started = time.monotonic()
    figures: list[report.Figure] = []
    # SIGTERM (``timeout``, a CI job cancelled) unwinds like Ctrl-C: each scenario's stack is stopped, not orphaned.
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="imsrep-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        opts = replace(opts, workdir=workdir)
        for name in args.scenarios.split(","):
            log.info("bench: %s ...", name)
            figures += SCENARIOS[name](opts)
            log.info("%s", report.table([f for f in figures if f.scenario.startswith(name)]))
    command = shlex.join(["python", "-m", "bench", *argv])
    report.write(args.out, report.header(command, time.monotonic() - started), figures)
    log.info("bench: wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
