"""``imsrep simulator`` / ``python -m simulator``: run the IMS + KMS + IAM simulator.

Every option can also be set from the environment as ``IMSREP_SIM_<NAME>`` (``--copy-seconds`` is
``IMSREP_SIM_COPY_SECONDS``; several project IDs go space-separated in ``IMSREP_SIM_PROJECT_ID``).
"""

from __future__ import annotations

import logging
import re
import secrets
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from simulator.app import create_app
from simulator.catalog import CatalogError
from simulator.config import DEFAULT_PROJECT_ID, FaultKnobs, SimConfig
from simulator.context import Simulator

log = logging.getLogger("simulator")

PROJECT_ID = re.compile(r"[0-9a-f]{32}")


class LogLevel(str, Enum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


def _env(name: str) -> str:
    return f"IMSREP_SIM_{name}"


def _rate(name: str, what: str) -> typer.models.OptionInfo:
    return typer.Option(min=0.0, max=1.0, envvar=_env(name), help=what)


def simulator_command(
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, envvar=_env("PORT"), help="Port to listen on.")] = 8780,
    region: Annotated[str, typer.Option(envvar=_env("REGION"), help="Region name; also the first project's "
                                        "name.")] = "cn-north-4",
    project_id: Annotated[
        list[str] | None,
        typer.Option(envvar=_env("PROJECT_ID"), help=f"A project (32 hex); repeat for several. The first is the "
                     f"region's default project. [default: {DEFAULT_PROJECT_ID}]", show_default=False),
    ] = None,
    access_key: Annotated[str, typer.Option(envvar=_env("ACCESS_KEY"), help="AK accepted for all projects.")]
    = "AKEXAMPLE",
    secret_key: Annotated[str, typer.Option(envvar=_env("SECRET_KEY"), help="SK of that AK.")] = "SKEXAMPLE",
    iam_user: Annotated[str, typer.Option(envvar=_env("IAM_USER"), help="IAM user name for tokens.")]
    = "demo-user",
    iam_password: Annotated[str, typer.Option(envvar=_env("IAM_PASSWORD"), help="That user's password.")]
    = "demo-password",
    iam_domain: Annotated[str, typer.Option(envvar=_env("IAM_DOMAIN"), help="That user's domain (account) "
                                            "name.")] = "demo-domain",
    catalog: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, envvar=_env("CATALOG"),
                     help="JSON catalogue of images and keys (docs/simulator.md); default: the built-in one."),
    ] = None,
    copy_seconds: Annotated[float, typer.Option(min=0.0, envvar=_env("COPY_SECONDS"),
                                                help="Base duration of a copy job.")] = 5.0,
    copy_seconds_per_gb: Annotated[float, typer.Option(min=0.0, envvar=_env("COPY_SECONDS_PER_GB"),
                                                       help="Extra seconds per GiB of __image_size.")] = 0.0,
    job_limit: Annotated[int, typer.Option(min=0, envvar=_env("JOB_LIMIT"),
                                           help="Concurrent copy jobs per project (IMG.0060 above).")] = 5,
    image_quota: Annotated[int, typer.Option(min=0, envvar=_env("IMAGE_QUOTA"),
                                             help="Private images per project (IMG.0015 at it).")] = 50,
    request_rate: Annotated[float, typer.Option(min=0.0, envvar=_env("REQUEST_RATE"),
                                                help="Gateway limit, requests/second per project (429 "
                                                     "APIGW.0308 above); 0 = unlimited.")] = 0.0,
    fail_rate: Annotated[float, _rate("FAIL_RATE", "Probability that a copy job ends FAIL.")] = 0.0,
    error_rate: Annotated[float, _rate("ERROR_RATE", "Probability of a 5xx answer.")] = 0.0,
    throttle_rate: Annotated[float, _rate("THROTTLE_RATE", "Probability of a spurious 429 APIGW.0308.")] = 0.0,
    latency: Annotated[float, typer.Option(min=0.0, envvar=_env("LATENCY"),
                                           help="Seconds added to every API response.")] = 0.0,
    hang_rate: Annotated[float, _rate("HANG_RATE", "Probability that a request hangs (after taking effect).")]
    = 0.0,
    hang_seconds: Annotated[float, typer.Option(min=0.0, envvar=_env("HANG_SECONDS"),
                                                help="How long a hanging request hangs.")] = 120.0,
    seed: Annotated[int | None, typer.Option(envvar=_env("SEED"), help="Seed of all randomness; default: "
                                             "random, logged and shown at /_sim/health.")] = None,
    token_ttl: Annotated[float, typer.Option(min=0.0, envvar=_env("TOKEN_TTL"),
                                             help="IAM token lifetime in seconds.")] = 86_400.0,
    lockout_seconds: Annotated[float, typer.Option(min=0.0, envvar=_env("LOCKOUT_SECONDS"),
                                                   help="How long 5 failed signatures lock an AK.")] = 300.0,
    log_level: Annotated[LogLevel, typer.Option(envvar=_env("LOG_LEVEL"), help="Log level.")] = LogLevel.info,
) -> None:
    """Run the IMS + KMS + IAM simulator. Every option is also read from IMSREP_SIM_<NAME>."""
    project_ids = tuple(dict.fromkeys(project_id or [DEFAULT_PROJECT_ID]))
    bad = [pid for pid in project_ids if not PROJECT_ID.fullmatch(pid)]
    if bad:
        raise typer.BadParameter(f"project IDs are 32 lower-case hex characters: {bad}", param_hint="--project-id")
    config = SimConfig(
        host=host, port=port, region=region, project_ids=project_ids, access_key=access_key,
        secret_key=secret_key, iam_user=iam_user, iam_password=iam_password, iam_domain=iam_domain,
        catalog=catalog, copy_seconds=copy_seconds, copy_seconds_per_gb=copy_seconds_per_gb, job_limit=job_limit,
        image_quota=image_quota, seed=secrets.randbits(32) if seed is None else seed, token_ttl=token_ttl,
        lockout_seconds=lockout_seconds, log_level=log_level.value,
        knobs=FaultKnobs(fail_rate=fail_rate, error_rate=error_rate, throttle_rate=throttle_rate,
                         latency=latency, hang_rate=hang_rate, hang_seconds=hang_seconds,
                         request_rate=request_rate),
    )
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sim = Simulator(config)
    except CatalogError as exc:
        raise typer.BadParameter(str(exc), param_hint="--catalog") from exc
    log.info("IMS simulator: region %s, projects %s, seed %d, on http://%s:%d",
             config.region, ", ".join(project_ids), config.seed, host, port)
    # A short graceful shutdown: hanging requests must not hold a stop for --hang-seconds.
    uvicorn.run(create_app(config, sim), host=host, port=port, log_level=config.log_level,
                timeout_graceful_shutdown=1, server_header=False)
