"""Print constraints.txt: every distribution installed in this environment but the project itself, pinned.

Run by ``make lock`` in a fresh virtual environment. A pin whose release does not support every Python the project
declares (``requires-python``) gets a marker limiting it to the Pythons it supports, so an older Python resolves
that package on its own within pyproject.toml's bounds.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions, metadata

from packaging.specifiers import SpecifierSet

PROJECT = "ims-replicator"
# The Pythons the project supports: its "Programming Language :: Python :: 3.N" classifiers (pyproject.toml), read
# from the copy installed in this environment.
PYTHONS = [
    m.group(1)
    for c in metadata(PROJECT).get_all("Classifier") or []
    if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
]
SKIP = {PROJECT, "pip", "setuptools", "wheel"}


def main() -> None:
    lines = []
    for dist in distributions():
        name = dist.metadata["Name"]
        if name.lower() in SKIP:
            continue
        pin = f"{name}=={dist.version}"
        supported = SpecifierSet(dist.metadata.get("Requires-Python") or "")
        ours = [v for v in PYTHONS if v in supported]
        if ours != PYTHONS:
            pin += f'; python_version >= "{ours[0]}"'
        lines.append(pin)
    python = sys.version.split()[0]
    header = [
        f"# pip install -c constraints.txt ...: the versions the suite passed with (Python {python}).",
        "# Refresh: make lock (a fresh venv, the newest versions pyproject.toml allows, then this file).",
    ]
    sys.stdout.write("\n".join([*header, *sorted(lines, key=str.lower)]) + "\n")


if __name__ == "__main__":
    main()
