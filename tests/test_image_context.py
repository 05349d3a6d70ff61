"""The image builds from what ``.dockerignore`` lets into the build context: every ``COPY`` source of the Dockerfile is
there, and the Dockerfile's ``pip install`` succeeds on exactly those files.

No Docker engine is needed: the context is computed as Docker computes it, from the checkout's files and Docker's
``.dockerignore`` rules, reimplemented below from moby's ``patternmatcher`` (github.com/moby/patternmatcher, used by
the classic builder and by BuildKit) and Docker's documentation ("dockerignore file",
https://docs.docker.com/build/concepts/context/#dockerignore-files).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.support import locked_pins

ROOT = Path(__file__).resolve().parents[1]
LOCKED = ("celery", "kombu", "redis")


# --- .dockerignore, as moby's patternmatcher reads and applies it ---------------------------------------------------


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` (Unix): no empty or ``.`` elements, ``..`` resolved lexically, ``"."`` when empty."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part != ".." or not rooted:  # ".." above the root is the root
            parts.append(part)
    cleaned = "/".join(parts)
    return "/" + cleaned if rooted else cleaned or "."


def read_patterns(text: str) -> list[str]:
    """moby ``ignorefile.ReadAll``: a ``#`` in column one is a comment (checked before trimming), then whitespace is
    trimmed, blank lines skipped, each pattern (after any ``!``) cleaned and stripped of one leading ``/``."""
    patterns = []
    for line in text.removeprefix("\ufeff").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        pattern = line.strip()
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """moby ``Pattern.compile`` + ``Pattern.match``: Go ``filepath.Match`` syntax (``*`` and ``?`` never match ``/``,
    ``[...]`` classes, ``\\`` escapes) plus ``**``, any number of directories, zero included (``**/`` is ``**``).

    Like moby, a pattern without wildcards is an exact match, one ending in ``**`` a prefix and one starting with
    ``**`` (and no other wildcard) a suffix test; moby's quirks come with it (``**foo`` matches ``barfoo``)."""
    regex, kind, i = "^", "exact", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            first, i = i == 0, i + (3 if pattern.startswith("**/", i) else 2)
            if i >= len(pattern):
                regex, kind = (regex, "prefix") if kind == "exact" else (regex + ".*", "regexp")
            else:
                regex, kind = regex + "(.*/)?", "regexp"
            if first:
                kind = "suffix"
            continue
        if ch == "*":
            regex, kind = regex + "[^/]*", "regexp"
        elif ch == "?":
            regex, kind = regex + "[^/]", "regexp"
        elif ch in ".+()|{}$":
            regex += "\\" + ch
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            regex, kind = regex + "\\" + pattern[i], "regexp"
        elif ch == "\\":  # a trailing backslash, kept as moby keeps it
            regex += "\\"
        elif ch in "[]":
            regex, kind = regex + ch, "regexp"
        else:
            regex += ch
        i += 1
    if kind == "exact":
        return lambda path: path == pattern
    if kind == "prefix":
        return lambda path: path.startswith(pattern[:-2])
    if kind == "suffix":
        suffix = pattern[2:]
        return lambda path: path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
    return re.compile(regex + "$").match  # type: ignore[return-value]


def _matches_or_a_parent_does(match: Callable[[str], bool], path: str) -> bool:
    parts = path.split("/")
    return bool(match(path)) or any(match("/".join(parts[: i + 1])) for i in range(len(parts) - 1))


def excluded(path: str, patterns: list[str]) -> bool:
    """moby ``PatternMatcher.MatchesOrParentMatches``: a pattern applies to a path when it matches the path or one of
    its parent directories (so ``!config/`` brings back all of config/); the last pattern that applies wins."""
    matched = False
    for pattern in patterns:
        if pattern == "!":
            raise ValueError('illegal exclusion pattern: "!"')
        exclusion = pattern.startswith("!")
        # As moby: an exception can only undo a match, and a pattern only matters to a path not yet matched.
        if exclusion != matched:
            continue
        if _matches_or_a_parent_does(compile_pattern(go_clean(pattern.removeprefix("!"))), path):
            matched = not exclusion
    return matched


def checkout_files() -> list[str]:
    """The checkout's files, tracked or not, without what .gitignore keeps out (.venv, caches, .state)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({path for path in listing.split("\0") if path and (ROOT / path).is_file()})


def build_context(dockerignore: str | None = None) -> list[str]:
    """The files ``docker build .`` sends from this checkout under ``dockerignore`` (the checkout's by default)."""
    if dockerignore is None:
        dockerignore = (ROOT / ".dockerignore").read_text()
    patterns = read_patterns(dockerignore)
    return [path for path in checkout_files() if not excluded(path, patterns)]


# --- the Dockerfile ---------------------------------------------------------------------------------------------------


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comment lines dropped, ``\\`` continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            result.append((keyword.upper(), arguments.strip()))
            pending = ""
    assert not pending, f"the Dockerfile ends inside a continued line: {pending!r}"
    return result


def copy_sources(dockerfile: str) -> list[str]:
    """The context paths every ``COPY`` reads: ``--flag[=value]`` options first, then the sources and a destination,
    whitespace-separated or as a JSON array. ``COPY --from`` reads another stage or image, not the context."""
    sources = []
    for keyword, arguments in instructions(dockerfile):
        if keyword != "COPY":
            continue
        flags = []
        while arguments.startswith("--"):
            flag, _, arguments = arguments.partition(" ")
            flags.append(flag)
            arguments = arguments.lstrip()
        if any(flag.startswith("--from=") for flag in flags):
            continue
        words = json.loads(arguments) if arguments.startswith("[") else arguments.split()
        assert len(words) >= 2, f"COPY needs a source and a destination: {arguments!r}"
        sources += words[:-1]
    return sources


def missing_copy_sources(dockerfile: str, context: Iterable[str]) -> list[str]:
    """The ``COPY`` sources with nothing in ``context``: neither a file nor a directory holding one (wildcards are
    matched as Docker does, with ``filepath.Match``)."""
    files = list(context)
    missing = []
    for source in copy_sources(dockerfile):
        path = go_clean(source).lstrip("/") or "."
        if path == ".":
            found = bool(files)
        elif any(ch in path for ch in "*?["):
            match = compile_pattern(path)
            found = any(_matches_or_a_parent_does(match, file) for file in files)
        else:
            found = any(file == path or file.startswith(path + "/") for file in files)
        if not found:
            missing.append(source)
    return missing


def _copy_failures(missing: list[str]) -> str:
    return "; ".join(
        f"Dockerfile COPY source {source!r} is not in the build context: add '!{source}' to .dockerignore"
        for source in missing
    )


# --- the matcher against Docker's documented examples ---------------------------------------------------------------


def _context(dockerignore: str, paths: Iterable[str]) -> set[str]:
    patterns = read_patterns(dockerignore)
    return {path for path in paths if not excluded(path, patterns)}


def test_reading_the_file_follows_moby() -> None:
    text = "\ufeff# a comment\n\n  /a/../b/./c/  \n! /config/\n   # not a comment: column one only\n!x\n//y\n"
    assert read_patterns(text) == ["b/c", "!config", "# not a comment: column one only", "!x", "y"]
    assert [go_clean(p) for p in ("", ".", "a//b/", "../a", "/..", "a/../../b", "./x")] == [
        ".",
        ".",
        "a/b",
        "../a",
        "/",
        "../b",
        "x",
    ]


def test_docker_documented_wildcards() -> None:
    ignore = "# comment\n*/temp*\n*/*/temp*\ntemp?\n"
    paths = {
        "somedir/temporary.txt",  # */temp*
        "somedir/temp",  # */temp*
        "somedir/temp/inside.txt",  # its parent directory matches */temp*
        "somedir/subdir/temporary.txt",  # */*/temp*
        "tempa",  # temp?
        "tempb",  # temp?
        "temporary.txt",  # temp? is one character; */temp* needs a directory
        "tempab",
        "a/b/c/temp.txt",  # deeper than */*/temp*
        "temp",
    }
    assert _context(ignore, paths) == {"temporary.txt", "tempab", "a/b/c/temp.txt", "temp"}


def test_double_star_matches_any_number_of_directories_even_none() -> None:
    paths = {"main.go", "cmd/main.go", "a/b/c/x.go", "main.gox", "go/readme", "a/**/b"}
    assert _context("**/*.go", paths) == {"main.gox", "go/readme", "a/**/b"}
    assert _context("a/**/b", {"a/b", "a/x/b", "a/x/y/b", "ab", "a/bc", "x/a/b"}) == {"ab", "a/bc", "x/a/b"}
    assert _context("docs/**", {"docs/a.md", "docs/x/y.md", "docs", "docsy/a"}) == {"docs", "docsy/a"}
    assert _context("**", {"a", "b/c"}) == set()


def test_question_mark_and_classes_do_not_cross_directories() -> None:
    assert _context("a?c", {"abc", "a/c", "abbc"}) == {"a/c", "abbc"}
    assert _context("a*c", {"abbc", "ab/c"}) == {"ab/c"}
    assert _context("file[0-9].txt", {"file1.txt", "filex.txt"}) == {"filex.txt"}
    assert _context("file[^0-9].txt", {"file1.txt", "filex.txt"}) == {"file1.txt"}
    assert _context("a.c", {"a.c", "abc"}) == {"abc"}  # "." is literal
    assert _context(r"a\*", {"a*", "ab"}) == {"ab"}  # an escaped "*" is literal


def test_the_last_matching_pattern_wins() -> None:
    paths = {"README.md", "README-secret.md", "README-public.md", "CHANGES.md", "main.py"}
    assert _context("*.md\n!README.md\n", paths) == {"README.md", "main.py"}
    assert _context("*.md\n!README*.md\nREADME-secret.md\n", paths) == {"README.md", "README-public.md", "main.py"}
    # The middle line does nothing: the exception after it re-includes README-secret.md.
    assert _context("*.md\nREADME-secret.md\n!README*.md\n", paths) == {
        "README.md",
        "README-secret.md",
        "README-public.md",
        "main.py",
    }


def test_a_directory_pattern_applies_to_everything_below_it() -> None:
    paths = {"node_modules/a/index.js", "node_modules/b.js", "src/node_modules/c.js", "src/main.js"}
    assert _context("node_modules", paths) == {"src/node_modules/c.js", "src/main.js"}
    assert _context("/node_modules/", paths) == {"src/node_modules/c.js", "src/main.js"}
    assert _context("**/node_modules", paths) == {"src/main.js"}
    # An allow-list: everything out, then directories back in, with exceptions inside them.
    paths = {"config/a.py", "config/deep/b.json", "config/__pycache__/a.pyc", "configs/x", ".env", "api/x.py"}
    ignore = "*\n!config/\n**/__pycache__\n"
    assert _context(ignore, paths) == {"config/a.py", "config/deep/b.json"}
    assert _context("*\n!config/deep\n", paths) == {"config/deep/b.json"}
    assert _context("config\n!config/deep/b.json\n", paths) - {"configs/x", ".env", "api/x.py"} == {
        "config/deep/b.json"
    }


# --- the checkout's Dockerfile and .dockerignore ----------------------------------------------------------------------


def test_the_dockerfile_parser_reads_every_copy_form() -> None:
    dockerfile = (
        "FROM python:3.12\n"
        "# COPY commented/out ./\n"
        "copy a.txt ./\n"
        "COPY --chown=1000:1000 --chmod=644 --link b c \\\n"
        "    d/\n"
        'COPY ["with space.txt", "e", "/app/"]\n'
        'COPY --link ["f", "./"]\n'
        "COPY --from=builder /wheels /wheels\n"
        "RUN echo COPY not/this\n"
    )
    assert copy_sources(dockerfile) == ["a.txt", "b", "c", "with space.txt", "e", "f"]
    context = ["a.txt", "b/x", "c", "with space.txt", "e/f/g", "cc/x"]
    assert missing_copy_sources(dockerfile, context) == ["f"]
    assert missing_copy_sources("COPY *.txt ./\nCOPY src/*.py ./\n", context) == ["src/*.py"]
    assert missing_copy_sources("COPY . ./\nCOPY ./a.txt ./\n", context) == []


def test_every_copy_source_is_in_the_build_context() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert copy_sources(dockerfile), "the Dockerfile copies nothing"
    missing = missing_copy_sources(dockerfile, build_context())
    assert not missing, _copy_failures(missing)


def test_the_copy_check_catches_a_lock_left_out_of_the_context() -> None:
    text = (ROOT / ".dockerignore").read_text()
    without = "\n".join(line for line in text.splitlines() if line.strip() != "!constraints.txt")
    assert without != text.rstrip("\n"), ".dockerignore has no '!constraints.txt' line"
    missing = missing_copy_sources((ROOT / "Dockerfile").read_text(), build_context(without))
    assert missing == ["constraints.txt"]
    assert "add '!constraints.txt' to .dockerignore" in _copy_failures(missing)


def test_the_context_holds_no_local_state_or_tests() -> None:
    context = build_context()
    assert {"pyproject.toml", "README.md", "LICENSE", "constraints.txt", "api/app.py", "cli/main.py"} <= set(context)
    leaked = [p for p in context if p.startswith(("tests/", "bench/", ".")) or p.endswith((".pyc", ".env"))]
    assert not leaked, leaked


# --- the Dockerfile's install, on exactly that context ----------------------------------------------------------------


def _pip_install_argv(dockerfile: str) -> list[str]:
    """The ``pip install ...`` that starts the Dockerfile's install ``RUN`` (what comes before its first ``&&``)."""
    commands = [arguments for keyword, arguments in instructions(dockerfile) if keyword == "RUN"]
    installs = [shlex.split(command.split("&&")[0]) for command in commands if "pip install" in command]
    assert len(installs) == 1, commands
    assert installs[0][:2] == ["pip", "install"], installs[0]
    return installs[0]


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_dockerfile_install_succeeds_on_the_build_context(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for path in build_context():
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, context / path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"

    argv = [str(python), "-m", *_pip_install_argv((ROOT / "Dockerfile").read_text())]
    started = time.monotonic()
    result = subprocess.run(argv, cwd=context, capture_output=True, text=True)
    took = time.monotonic() - started
    assert result.returncode == 0, (
        f"{shlex.join(argv)} failed ({took:.0f} s):\n{result.stdout[-3000:]}\n{result.stderr}"
    )

    imsrep = subprocess.run([str(venv / "bin" / "imsrep"), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert imsrep.returncode == 0, imsrep.stderr
    assert "Usage" in imsrep.stdout

    # pyproject's license-files must reach the build: setuptools only warns when they are missing (for now).
    script = "import importlib.metadata as m; print(*m.files('ims-replicator'), sep='\\n')"
    files = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert ".dist-info/licenses/LICENSE\n" in files, "the image would ship no LICENSE: add '!LICENSE' to .dockerignore"

    script = f"import json, importlib.metadata as m; print(json.dumps({{n: m.version(n) for n in {LOCKED!r}}}))"
    versions = json.loads(
        subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    )
    pins = locked_pins((context / "constraints.txt").read_text())
    assert versions == {name: pins[name] for name in LOCKED}
