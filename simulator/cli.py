"""``imsrep simulator`` / ``python -m simulator``: run the IMS + KMS + IAM simulator.

Every option can also be set from the environment as ``IMSREP_SIM_<NAME>`` (``--copy-seconds`` is
``IMSREP_SIM_COPY_SECONDS``; repeatable options go space-separated: ``IMSREP_SIM_REGION="cn-north-4 cn-south-1"``).
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from starlette.applications import Starlette

from simulator.app import create_app
from simulator.catalog import CatalogError
from simulator.catalog.records import default_project_id_for
from simulator.config import DEFAULT_AGENCY, DEFAULT_PROJECT_ID, AgencySpec, FaultKnobs, RegionSpec, SimConfig
from simulator.context import Simulator
from simulator.outage import refusing_protocol

log = logging.getLogger("simulator")

PROJECT_ID = re.compile(r"[0-9a-f]{32}")
REGION_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


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


def _pairs(values: list[str], option: str) -> list[tuple[str | None, str]]:
    """``A=B`` as (A, B) and a bare ``B`` as (None, B)."""
    pairs: list[tuple[str | None, str]] = []
    for value in values:
        left, sep, right = value.partition("=")
        if sep and (not left or not right):
            raise typer.BadParameter(f"{value!r}: give NAME=VALUE", param_hint=option)
        pairs.append((left, right) if sep else (None, value))
    return pairs


def region_specs(
    regions: list[str], port: int, region_ports: list[str], project_ids: list[str]
) -> tuple[RegionSpec, ...]:
    """Regions in order (the first on ``port``), each with its projects and port (see docs/simulator.md)."""
    names = list(dict.fromkeys(regions))
    bad = [name for name in names if not REGION_NAME.fullmatch(name)]
    if bad:
        raise typer.BadParameter(f"region names are lower-case words joined by '-': {bad}", param_hint="--region")
    ports = {name: port + index if port else 0 for index, name in enumerate(names)}
    for region, value in _pairs(region_ports, "--region-port"):
        if region not in names[1:]:
            raise typer.BadParameter(
                f"{region!r} is not a region after the first (the first is on --port)", param_hint="--region-port"
            )
        if not value.isdigit() or int(value) > 65535:
            raise typer.BadParameter(f"{value!r} is not a port", param_hint="--region-port")
        ports[region] = int(value)
    taken = [p for p in ports.values() if p]
    if len(set(taken)) != len(taken):
        raise typer.BadParameter(f"two regions on one port: {ports}", param_hint="--region-port")
    owned: dict[str, list[str]] = {name: [] for name in names}
    for region, pid in _pairs(project_ids, "--project-id"):
        region = region or names[0]
        if region not in owned:
            raise typer.BadParameter(f"{region!r} is not a region served", param_hint="--project-id")
        if not PROJECT_ID.fullmatch(pid):
            raise typer.BadParameter(
                f"project IDs are 32 lower-case hex characters: {pid!r}", param_hint="--project-id"
            )
        owned[region].append(pid)
    # Every region has at least its default project: the well-known one for the first, a derived one elsewhere.
    defaults = {
        name: DEFAULT_PROJECT_ID if index == 0 else default_project_id_for(name) for index, name in enumerate(names)
    }
    specs = tuple(
        RegionSpec(name, tuple(dict.fromkeys(owned[name] or [defaults[name]])), ports[name]) for name in names
    )
    every = [pid for spec in specs for pid in spec.project_ids]
    if len(set(every)) != len(every):
        raise typer.BadParameter("a project belongs to one region only", param_hint="--project-id")
    return specs


def agency_specs(values: list[str], regions: list[str]) -> tuple[AgencySpec, ...]:
    """``NAME`` (no cross-region permission), ``NAME=*`` (every region) or ``NAME=REGION,REGION``."""
    specs = []
    for name, granted in _pairs(values, "--agency"):
        if name is None:
            specs.append(AgencySpec(granted, frozenset(), frozenset()))
            continue
        if granted == "*":
            specs.append(AgencySpec(name))
            continue
        chosen = frozenset(granted.split(","))
        unknown = sorted(chosen - set(regions))
        if unknown:
            raise typer.BadParameter(f"agency {name}: regions not served: {unknown}", param_hint="--agency")
        specs.append(AgencySpec(name, chosen, chosen))
    return tuple(specs)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for ``host:port`` whose protocol is set to TCP, as ``getaddrinfo`` gives it. asyncio turns
    Nagle's algorithm off (``TCP_NODELAY``) only on sockets whose ``proto`` is ``IPPROTO_TCP``, and accepted
    connections inherit the listener's; uvicorn's ``bind_socket`` leaves it 0, and then each response's second
    write waits for the client's delayed ACK, tens of milliseconds a request (benchmarked in docs/performance.md).
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise SystemExit(f"simulator: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def serve(app: Starlette, sim: Simulator, config: SimConfig) -> None:
    """Listen on one port per region, all served by one process and one event loop (so a cross-region copy
    changes both regions in one step), and record the ports actually bound."""
    sockets = {spec.name: listening_socket(config.host, spec.port) for spec in config.regions}
    sim.bind({region: sock.getsockname()[1] for region, sock in sockets.items()})
    # A short graceful shutdown: hanging requests must not hold a stop for --hang-seconds.
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=config.log_level,
            timeout_graceful_shutdown=1,
            server_header=False,
            http=refusing_protocol(sim),
        )
    )
    server.run(sockets=list(sockets.values()))


def simulator_command(
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, envvar=_env("PORT"), help="Port to listen on.")] = 8780,
    region: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("REGION"),
            help="A region served, also its default project's name; repeat for "
            "several. The first is served on --port. [default: cn-north-4]",
            show_default=False,
        ),
    ] = None,
    region_port: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("REGION_PORT"),
            help="REGION=PORT for a region after the first (0: any free "
            "port); default: --port plus the region's position.",
            show_default=False,
        ),
    ] = None,
    project_id: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("PROJECT_ID"),
            help=f"A project (32 hex) of the first region, or REGION=ID; "
            f"repeat for several. A region's first is its default project. [default: "
            f"{DEFAULT_PROJECT_ID}; other regions: derived from their name]",
            show_default=False,
        ),
    ] = None,
    agency: Annotated[
        list[str] | None,
        typer.Option(
            envvar=_env("AGENCY"),
            help=f"An IAM agency for cross-region copies: NAME (no permission), "
            f"NAME=* (every region) or NAME=REGION,REGION; repeatable. {DEFAULT_AGENCY} (every region) "
            f"always exists unless redefined.",
            show_default=False,
        ),
    ] = None,
    access_key: Annotated[
        str, typer.Option(envvar=_env("ACCESS_KEY"), help="AK accepted for all projects.")
    ] = "AKEXAMPLE",
    secret_key: Annotated[str, typer.Option(envvar=_env("SECRET_KEY"), help="SK of that AK.")] = "SKEXAMPLE",
    iam_user: Annotated[str, typer.Option(envvar=_env("IAM_USER"), help="IAM user name for tokens.")] = "demo-user",
    iam_password: Annotated[
        str, typer.Option(envvar=_env("IAM_PASSWORD"), help="That user's password.")
    ] = "demo-password",
    iam_domain: Annotated[
        str, typer.Option(envvar=_env("IAM_DOMAIN"), help="That user's domain (account) name.")
    ] = "demo-domain",
    catalog: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            envvar=_env("CATALOG"),
            help="JSON catalogue of images and keys (docs/simulator.md); default: the built-in one.",
        ),
    ] = None,
    copy_seconds: Annotated[
        float, typer.Option(min=0.0, envvar=_env("COPY_SECONDS"), help="Base duration of a copy job.")
    ] = 5.0,
    copy_seconds_per_gb: Annotated[
        float, typer.Option(min=0.0, envvar=_env("COPY_SECONDS_PER_GB"), help="Extra seconds per GiB of __image_size.")
    ] = 0.0,
    job_limit: Annotated[
        int, typer.Option(min=0, envvar=_env("JOB_LIMIT"), help="Concurrent copy jobs per project (IMG.0060 above).")
    ] = 5,
    image_quota: Annotated[
        int, typer.Option(min=0, envvar=_env("IMAGE_QUOTA"), help="Private images per project (IMG.0015 at it).")
    ] = 50,
    cross_region_job_limit: Annotated[
        int,
        typer.Option(
            min=0,
            envvar=_env("CROSS_REGION_JOB_LIMIT"),
            help="Concurrent cross-region copies per project (IMG.0149 above).",
        ),
    ] = 5,
    shared_job_pool: Annotated[
        bool,
        typer.Option(
            envvar=_env("SHARED_JOB_POOL"),
            help="Cross-region copies also count against --job-limit (and in-region ones against it).",
        ),
    ] = False,
    cross_region_max_gb: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar=_env("CROSS_REGION_MAX_GB"),
            help="Largest image a cross-region copy takes (IMG.0146 above); 0: Huawei's, by source region.",
        ),
    ] = 0.0,
    member_job_seconds: Annotated[
        float, typer.Option(min=0.0, envvar=_env("MEMBER_JOB_SECONDS"), help="Duration of an image-member job.")
    ] = 1.0,
    unencrypted_shared_copies: Annotated[
        bool,
        typer.Option(
            envvar=_env("UNENCRYPTED_SHARED_COPIES"),
            help="A member's copy of a shared image refuses a cmk_id (IMG.0197); by default it may re-key it.",
        ),
    ] = False,
    new_images_every: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar=_env("NEW_IMAGES_EVERY"),
            help="Every so many seconds, add new private images to the home project (the first region's default); "
            "0: never.",
        ),
    ] = 0.0,
    new_images_count: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar=_env("NEW_IMAGES_COUNT"),
            help="How many images each --new-images-every adds. [default: 1]",
            show_default=False,
        ),
    ] = None,
    request_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            envvar=_env("REQUEST_RATE"),
            help="Gateway limit, requests/second per project (429 APIGW.0308 above); 0 = unlimited.",
        ),
    ] = 0.0,
    fail_rate: Annotated[float, _rate("FAIL_RATE", "Probability that a copy job ends FAIL.")] = 0.0,
    error_rate: Annotated[float, _rate("ERROR_RATE", "Probability of a 5xx answer.")] = 0.0,
    throttle_rate: Annotated[float, _rate("THROTTLE_RATE", "Probability of a spurious 429 APIGW.0308.")] = 0.0,
    latency: Annotated[
        float, typer.Option(min=0.0, envvar=_env("LATENCY"), help="Seconds added to every API response.")
    ] = 0.0,
    hang_rate: Annotated[float, _rate("HANG_RATE", "Probability that a request hangs (after taking effect).")] = 0.0,
    hang_seconds: Annotated[
        float, typer.Option(min=0.0, envvar=_env("HANG_SECONDS"), help="How long a hanging request hangs.")
    ] = 120.0,
    seed: Annotated[
        int | None,
        typer.Option(
            envvar=_env("SEED"), help="Seed of all randomness; default: random, logged and shown at /_sim/health."
        ),
    ] = None,
    token_ttl: Annotated[
        float, typer.Option(min=0.0, envvar=_env("TOKEN_TTL"), help="IAM token lifetime in seconds.")
    ] = 86_400.0,
    temporary_credentials_seconds: Annotated[
        float,
        typer.Option(
            min=1.0,
            envvar=_env("TEMPORARY_CREDENTIALS_SECONDS"),
            help="Lifetime of the temporary AK/SK the metadata service hands out (GET /openstack/latest/securitykey).",
        ),
    ] = 86_400.0,
    lockout_seconds: Annotated[
        float, typer.Option(min=0.0, envvar=_env("LOCKOUT_SECONDS"), help="How long 5 failed signatures lock an AK.")
    ] = 300.0,
    log_level: Annotated[LogLevel, typer.Option(envvar=_env("LOG_LEVEL"), help="Log level.")] = LogLevel.info,
) -> None:
    """Run the IMS + KMS + IAM simulator. Every option is also read from IMSREP_SIM_<NAME>."""
    if new_images_count is not None and not new_images_every:
        raise typer.BadParameter("give --new-images-every too", param_hint="--new-images-count")
    names = region or ["cn-north-4"]
    first, *others = region_specs(names, port, region_port or [], project_id or [])
    config = SimConfig(
        host=host,
        port=port,
        region=first.name,
        project_ids=first.project_ids,
        extra_regions=tuple(others),
        agencies=agency_specs(agency or [], names),
        access_key=access_key,
        secret_key=secret_key,
        iam_user=iam_user,
        iam_password=iam_password,
        iam_domain=iam_domain,
        catalog=catalog,
        copy_seconds=copy_seconds,
        copy_seconds_per_gb=copy_seconds_per_gb,
        job_limit=job_limit,
        image_quota=image_quota,
        cross_region_job_limit=cross_region_job_limit,
        shared_job_pool=shared_job_pool,
        cross_region_max_gb=cross_region_max_gb,
        member_job_seconds=member_job_seconds,
        unencrypted_shared_copies=unencrypted_shared_copies,
        new_images_every=new_images_every,
        new_images_count=new_images_count or 1,
        seed=secrets.randbits(32) if seed is None else seed,
        token_ttl=token_ttl,
        temporary_credentials_seconds=temporary_credentials_seconds,
        lockout_seconds=lockout_seconds,
        log_level=log_level.value,
        knobs=FaultKnobs(
            fail_rate=fail_rate,
            error_rate=error_rate,
            throttle_rate=throttle_rate,
            latency=latency,
            hang_rate=hang_rate,
            hang_seconds=hang_seconds,
            request_rate=request_rate,
        ),
    )
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sim = Simulator(config)
    except CatalogError as exc:
        raise typer.BadParameter(str(exc), param_hint="--catalog") from exc
    for spec in config.regions:
        log.info("IMS simulator: region %s, projects %s", spec.name, ", ".join(spec.project_ids))
    log.info("seed %d", config.seed)
    serve(create_app(config, sim), sim, config)
