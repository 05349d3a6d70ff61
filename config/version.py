"""The one version of ims-replicator: the installed distribution's (``pyproject.toml``), read through
``importlib.metadata`` by the CLI, the API's OpenAPI document, the IMS client's User-Agent and the build-info metric."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "ims-replicator"

try:
    VERSION = version(DISTRIBUTION)
except PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0+unknown"
