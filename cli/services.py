"""The command line of every service, in one place.

``LocalStack`` runs these as ``<venv python> -m <args>``; ``docker-compose.yml`` repeats them as
``python -m <args>``, and ``tests/cli/test_compose.py`` checks that the two agree, so the compose services and the
local stack cannot drift apart. Each function returns the arguments after ``python -m``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from worker.run import beat_argv, worker_argv

API_APP = "api.app:create_app"
FLOWER_CONFIG = "worker.flower_config"  # the stage queues, so Flower's Broker tab lists them all (see that module)

# The well-known ports of ``imsrep up`` and docker-compose.yml.
DEFAULT_PORTS = {"redis": 6379, "simulator": 8780, "api": 8000, "flower": 5555}

# The simulator's single region and project in the local stack: fixed, so that its deterministic image IDs (and the
# sample manifests in examples/) stay the same from run to run.
SIMULATOR_REGION = "cn-north-4"
SIMULATOR_PROJECT_ID = "ac234de25c6741d2b1273da49eea1b9e"


def api_args(host: str, port: int) -> list[str]:
    return ["uvicorn", API_APP, "--factory", "--host", host, "--port", str(port)]


def _after_python_m(argv: list[str]) -> list[str]:
    assert argv[1] == "-m", argv
    return argv[2:]


def worker_args() -> list[str]:
    """The worker team's command line (worker/run.py): every stage's queue, task events for Flower."""
    return _after_python_m(worker_argv())


def beat_args(schedule: Path | str) -> list[str]:
    # The schedule file goes to the state directory, not the working directory.
    return [*_after_python_m(beat_argv()), "-s", str(schedule)]


def flower_args(broker_url: str, host: str, port: int, db: Path | str) -> list[str]:
    """Flower on the broker and the queue names (``--broker``, not ``-A``: it need not import our task code; Celery
    options go before ``flower``; Flower's own take ``--name=value``). Task history is bounded (``max_tasks``) and
    saved every 10 s, not only at a clean shutdown. The password comes from ``FLOWER_BASIC_AUTH`` in the environment,
    never the command line, so it does not show in ``ps``."""
    return [
        "celery", "--broker", broker_url, "--config", FLOWER_CONFIG, "flower",
        f"--port={port}", f"--address={host}",
        "--persistent=True", f"--db={db}", "--state_save_interval=10000",
        "--max_tasks=10000", "--purge_offline_workers=60",
    ]  # fmt: skip


def simulator_env(access_key: str, secret_key: str) -> dict[str, str]:
    # The simulator reads every option from IMSREP_SIM_*; the AK/SK go there rather than on the command line.
    return {"IMSREP_SIM_ACCESS_KEY": access_key, "IMSREP_SIM_SECRET_KEY": secret_key}


def flower_env(user: str, password: str) -> dict[str, str]:
    return {"FLOWER_BASIC_AUTH": f"{user}:{password}"}


def simulator_args(host: str, port: int, extra_project_ids: Sequence[str] = (), **options: object) -> list[str]:
    """The simulator serving the local stack's project (and any extra ones); ``options`` become ``--flag value``
    (True: bare flag)."""
    args = [
        "simulator", "--host", host, "--port", str(port), "--region", SIMULATOR_REGION,
        "--project-id", SIMULATOR_PROJECT_ID,
    ]  # fmt: skip
    for project_id in extra_project_ids:
        args += ["--project-id", project_id]
    return args + option_flags(options)


def option_flags(options: dict[str, object]) -> list[str]:
    """``{"copy_seconds": 0.5, "verbose": True}`` as ``--copy-seconds 0.5 --verbose`` (False and None: left out)."""
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags
