"""The README, run: every shell example against a fresh ``imsrep up``, and every quoted session (a ```text block of
``$ command`` lines and their output) checked line by line, the way doc tests keep examples true.

A block the test cannot run says why in the comment before it (``<!-- readme-test: skip (why) -->``): it needs a
Huawei Cloud account, a Docker engine, or it is a synopsis rather than commands. A quoted output is checked where
it states something: each of its lines must appear in the command's output, in order, once IDs, times and rates
are masked (a line ``…`` stands for lines not quoted). Placeholders are filled from what earlier commands of the
same block printed: ``<batch_id>`` and ``BATCH_ID`` with the last batch ID, ``ITEM_ID`` with the last item ID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.processes import free_port, wait_until
from cli.stack import read_stack_file

pytestmark = pytest.mark.integration

README = Path(__file__).parents[1] / "README.md"
SKIP = re.compile(r"<!-- readme-test: skip \((?P<why>.+)\) -->")
FENCE = re.compile(r"^```(\w*)$")
HEX_ID = r"[0-9a-f]{32}"
# What an earlier command printed that a placeholder stands for (the last one printed wins).
FOUND = {
    "BATCH_ID": re.compile(rf"(?:batch|\"batch_id\": ?\")\s*({HEX_ID})"),
    # ... or the second column of a results CSV row
    "ITEM_ID": re.compile(rf"(?:\bitem\s+|\"item_id\": ?\"|^\d+,)({HEX_ID})", re.M),
}
# Masked before quoted and actual output are compared: IDs, and what changes from run to run.
MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(HEX_ID), "<id>"),
    (re.compile(r"\d+:\d\d:\d\d"), "<clock>"),
    (re.compile(r"\d+(\.\d+)?/min"), "<rate>"),
    (re.compile(r"\d+(\.\d+)?\s?s\b"), "<seconds>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T][\d:.]+(\+00:00|Z)?"), "<time>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d\b"), "<date>"),  # a date whose clock was masked already (a day turns over)
    (re.compile(r"\b\d+/\d+\b"), "<used/limit>"),  # quota and slots: read at moments a test cannot pin down
]


@dataclass(frozen=True)
class Block:
    line: int  # where its fence opens, 1-based
    lang: str
    text: str
    skip: str | None

    @property
    def commands(self) -> list[str]:
        """The logical lines of a shell block (continuations joined), comments and blanks left out."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def session(self) -> list[tuple[str, list[str]]]:
        """A quoted session: each ``$ command`` with the output lines quoted under it."""
        steps: list[tuple[str, list[str]]] = []
        for line in self.text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        return steps


def readme_blocks() -> list[Block]:
    lines = README.read_text().splitlines()
    blocks, start, lang = [], None, ""
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if fence and start is None:
            start, lang = number, fence.group(1)
        elif line == "```" and start is not None:
            before = next((lines[i] for i in range(start - 2, -1, -1) if lines[i].strip()), "")
            skip = SKIP.search(before)
            text = "\n".join(lines[start : number - 1])
            blocks.append(Block(start, lang, text, skip.group("why") if skip else None))
            start = None
    return blocks


SHELL = [b for b in readme_blocks() if b.lang == "sh"]
SESSIONS = [b for b in readme_blocks() if b.lang == "text" and b.text.startswith("$ ")]


def _id(block: Block) -> str:
    return f"README.md:{block.line}"


def masked(text: str) -> str:
    for pattern, mask in MASKS:
        text = pattern.sub(mask, text)
    return " ".join(text.replace("…", " ").split())


@dataclass
class Readme:
    """A directory laid out as the README assumes (``.venv``, ``examples/``, ``.state/`` of a running ``up``), and
    the commands run there."""

    cwd: Path
    env: dict[str, str]
    api_url: str
    flower_url: str
    outputs: list[str]

    def run(self, command: str, prelude: list[str]) -> subprocess.CompletedProcess[str]:
        for default, url in (("http://127.0.0.1:8000", self.api_url), ("http://127.0.0.1:5555", self.flower_url)):
            command = command.replace(default, url)
        for name, pattern in FOUND.items():
            found = [m for out in self.outputs for m in pattern.findall(out)]
            if found:
                command = command.replace(name, found[-1]).replace(f"<{name.lower()}>", found[-1])
        script = "\n".join([*prelude, command])
        result = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                timeout=180)  # fmt: skip
        self.outputs.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result


@contextmanager
def _up(root: Path) -> Iterator[Readme]:
    """A fresh ``imsrep up`` on free ports in ``root``, laid out like a checkout after ``make``."""
    checkout = Path(__file__).parents[1]
    (root / "examples").symlink_to(checkout / "examples")
    (root / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMSREP_")}
    env |= {"PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}", "COLUMNS": "120", "NO_COLOR": "1"}
    # Nothing to finish at the end: the default 10 s a stopping worker grants its tasks would all be waiting.
    env["IMSREP_WORKER_SOFT_SHUTDOWN_SECONDS"] = "1"
    ports = [f"--{name}-port={free_port()}" for name in ("api", "flower", "redis", "simulator")]
    up = subprocess.Popen([".venv/bin/imsrep", "up", *ports], cwd=root, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_until(lambda: read_stack_file(root / ".state") is not None or up.poll() is not None, 90, "imsrep up")
        info = read_stack_file(root / ".state")
        assert info is not None, f"imsrep up exited {up.returncode}; logs in {root / '.state' / 'logs'}"
        yield Readme(root, env, info.api_url, info.flower_url, [])
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=30)


@pytest.fixture(scope="module")
def shared_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Readme]:
    """One stack for the shell examples: each only has to run and be answered without an error."""
    with _up(tmp_path_factory.mktemp("readme")) as readme:
        yield readme


@pytest.fixture
def fresh_up(tmp_path: Path) -> Iterator[Readme]:
    """A stack of its own for a quoted session: what it prints depends on what ran before on the stack."""
    with _up(tmp_path) as readme:
        yield readme


@pytest.mark.parametrize("block", SHELL, ids=_id)
def test_each_shell_example_runs(block: Block, request: pytest.FixtureRequest) -> None:
    if block.skip:
        pytest.skip(block.skip)
    if any(line.split()[0] == "curl" for line in block.commands) and shutil.which("curl") is None:
        pytest.skip("needs curl, which this machine lacks")
    readme: Readme = request.getfixturevalue("shared_up")  # only now: a skipped block starts no stack
    readme.outputs.clear()  # placeholders are filled from this block's outputs only
    prelude: list[str] = []  # assignments (TOKEN=...) hold for the rest of the block, as in one shell
    for command in block.commands:
        result = readme.run(command, prelude)
        assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        assert not re.search(r'"status": ?[45]\d\d', result.stdout), result.stdout  # an API refusal
        if re.match(r"^[A-Z_]+=", command):
            prelude.append(command)


@pytest.mark.parametrize("block", SESSIONS, ids=_id)
def test_each_quoted_session_prints_what_the_readme_quotes(block: Block, fresh_up: Readme) -> None:
    readme = fresh_up
    for command, quoted in block.session():
        result = readme.run(command, [])
        actual = [masked(line) for line in (result.stdout + result.stderr).splitlines()]
        position = 0
        for expected in (masked(line) for line in quoted):
            if not expected:
                continue  # a blank line, or one that was all "…"
            hits = [i for i in range(position, len(actual)) if expected in actual[i]]
            assert hits, f"$ {command}\nquoted, not printed (in order): {expected!r}\nprinted:\n" + "\n".join(actual)
            position = hits[0] + 1


def test_every_block_is_run_or_says_why_not() -> None:
    for block in SHELL:
        assert block.commands, f"README.md:{block.line}: an empty shell block"
    assert SESSIONS, "the README quotes no session to check"
    assert [b for b in SHELL if not b.skip], "every shell example is skipped"
