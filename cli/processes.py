"""Starting, watching and stopping the local services as child process groups.

Used by ``cli.stack`` (``imsrep up``, the demo, the benchmarks and every test tier), so the tests exercise exactly
the processes a user runs. Each service runs in its own session (process group), so a stop or a SIGKILL reaches the
whole tree (a Celery worker and its pool children, uvicorn and its reloader), never only the parent.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A service did not start, or died while it was expected to run."""


# Ports handed out by this process: a service given one may not have bound it yet, so it is never handed out twice.
_handed_out: set[int] = set()
_LISTEN_FLOOR = 10000


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel draws outgoing connections' local ports from (Linux's default when unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now, for a child service to listen on.

    Drawn below the kernel's ephemeral range: a port the OS picks (``bind(0)``) comes from that range, and between
    the probe here and the child's own bind any outgoing connection (a worker's to Redis) may take it as its local
    port, which then refuses the listener (``Address already in use``, seen in the failover tier). Random, so that
    parallel runs rarely meet, and probed, so that a port someone listens on is skipped.
    """
    low, _ = _ephemeral_range()
    candidates = range(_LISTEN_FLOOR, low) if low - _LISTEN_FLOOR >= 1000 else range(0)
    for _ in range(200):
        port = random.choice(candidates) if candidates else 0
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            port = s.getsockname()[1]
        _handed_out.add(port)
        return port
    raise ServiceError(f"no free port found on {host} below {low}")


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` until it is true; raise ``TimeoutError`` naming ``what`` at the deadline.

    A check that raises a "not yet" (``not_yet``: the service it asks cannot answer for now) is tried again; any other
    exception is the check's own fault (a ``KeyError``, a failed assertion, a ``ServiceError``) and ends the wait at
    once, rather than reading as a timeout after the whole wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception as exc:
            if not not_yet(exc):
                raise
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def not_yet(exc: Exception) -> bool:
    """Whether a check's exception says the service it polls cannot answer for now (starting, restarting, failing
    over): a connection refused, reset or timed out (a socket's, HTTP's), a file not written yet, or Redis not taking
    commands (``worker.data.unavailable``: unreachable, loading, read-only, short of replicas)."""
    # Imported here: the common case (a check that answers) should not load the worker's data layer.
    import httpx

    from worker.data.connection import unavailable

    return isinstance(exc, (OSError, httpx.TransportError)) or unavailable(exc)


def tcp_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """One service: its command line, environment and log file, run in a process group of its own.

    ``env`` is laid over this process's environment; a value of ``None`` removes an inherited variable (the demo
    must not inherit a user's real cloud accounts, say).
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str | None] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        env = {k: v for k, v in {**os.environ, **self.env}.items() if v is not None}
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServiceError(f"{self.name} was never started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float = 30.0) -> ManagedProcess:
        def ready() -> bool:
            if not self.running():
                raise ServiceError(f"{self.name} exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            return check()

        try:
            wait_until(ready, timeout, f"{self.name} to be ready (log: {self.log_path})")
        except TimeoutError as exc:
            raise ServiceError(str(exc)) from None
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Children that outlived their parent (a pool process, say) must not linger either.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
