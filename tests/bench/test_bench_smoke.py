"""``python -m bench`` with tiny sizes, end to end, so the benchmark cannot rot: every scenario runs against a real
stack and the table comes out. Its figures mean nothing at these sizes and are not checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenarios import SCENARIOS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "--items": "6",
    "--projects": "2",
    "--project-items": "3",
    "--copy-seconds": "0.5",
    "--mix-base-seconds": "0.3",
    "--mix-seconds-per-gb": "0.1",
    "--long-copy-seconds": "1",
    "--long-items": "3",
    "--fixed-interval": "0.5",
    "--ingest-items": "60",
    "--flow-items": "5",
    "--naive-items": "2",
    "--naive-poll": "0.5",
    "--campaign-images": "60",
    "--campaign-copy-seconds": "30",
    "--fair-small-items": "2",
    "--fair-large-items": "12",
    "--account-counts": "1,2",
    "--scale-copy-seconds": "0.5",
}


def test_the_benchmark_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    args = [arg for pair in TINY.items() for arg in pair]
    command = [sys.executable, "-m", "bench", *args, "--workdir", str(tmp_path / "work"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "| Scenario | Figure | Measured | Goal | Baseline (same run) | Verdict |" in text
    assert f"{os.cpu_count()} cores" in text
    for name in SCENARIOS:
        assert f"\n| {name}: " in text, f"no rows for scenario {name}"
    for figure in ("slot utilisation", "IMS calls per succeeded item", "time to 202", "Redis memory per stored item"):
        assert figure in text
