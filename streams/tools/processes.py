"""Workers as real processes: `python -m streams worker` started, watched, stopped or killed.

One harness for everything that runs workers from the outside: `pokazy demo`, `pokazy bench`
and the integration tests (which SIGKILL them mid-stream). A child gets this process's
environment with its `POKAZY_*` variables replaced by the settings given, plus any overrides,
so what the child builds is exactly what the caller meant, whatever the caller's own `.env`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from streams.errors import PokazyError
from streams.settings import Settings
from streams.tools.query import run_query

HEALTH_POLL_INTERVAL = 0.1  # seconds between /health probes while a worker starts


def free_ports(count: int = 1) -> list[int]:
    """Ports nothing listens on now, all different (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def settings_env(settings: Settings) -> dict[str, str]:
    """The `POKAZY_*` variables that make a child process build these same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"POKAZY_{name.upper()}"] = str(value)
    return env


def child_env(settings: Settings, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with its `POKAZY_*` replaced by `settings`, then `overrides`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("POKAZY_")}
    return {**inherited, **settings_env(settings), **(overrides or {})}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The peak resident set size of a live process (`VmHWM`, Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise PokazyError(f"no VmHWM for pid {pid}")


@dataclass
class WorkerProcess:
    """One `python -m streams worker` with its settings, its log and (optionally) a profile.

    `overrides` are `POKAZY_*` variables the child gets on top of `settings` (a fault flag, a
    setting the test changes between starts): the parent's `settings` still say where to
    query it.
    """

    settings: Settings
    overrides: dict[str, str] = field(default_factory=dict)
    log_name: str = "worker.log"  # in the settings' data dir
    # Run under pyinstrument, its text profile written here when the worker stops (`--profile`).
    profile: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.settings.data_dir / self.log_name

    @property
    def web_port(self) -> int:
        """The port it serves /health and /sql on: an override's, else the settings'."""
        return int(self.overrides.get("POKAZY_WEB_PORT", self.settings.web_port))

    @property
    def pid(self) -> int:
        if self.process is None:
            raise PokazyError("the worker has not been started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process; `wait_healthy` waits until it serves."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "streams", "worker"]
        if self.profile is not None:
            output = self.profile.with_name(f"{self.profile.stem}-{self.starts}.txt")
            command[1:1] = ["-m", "pyinstrument", "-r", "text", "-o", str(output)]
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self.process = subprocess.Popen(
                command,
                env=child_env(self.settings, self.overrides),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout: float = 90) -> float:
        """Block until /health answers (the worker serves after its ClickHouse migrations);
        returns the time it did. A worker that exits first raises with its log's tail."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.web_port}/health"
        while time.monotonic() < deadline:
            if not self.running:
                code = None if self.process is None else self.process.returncode
                raise PokazyError(
                    f"the worker exited ({code}); {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if orjson.loads(response.read()).get("status") == "ok":
                        return time.time()
            except OSError:
                time.sleep(HEALTH_POLL_INTERVAL)
        raise PokazyError(
            f"the worker did not answer /health in {timeout:.0f}s; "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def run(self, timeout: float = 90) -> None:
        """Start and wait until it serves."""
        self.start()
        self.wait_healthy(timeout)

    def query(self, sql: str) -> list[list[Any]]:
        """A read-only query through this worker, waiting while it (re)starts: never on its
        embedded store directly, whose lock a restarting worker needs."""
        served = self.settings.model_copy(update={"web_port": self.web_port})
        _, rows = run_query(served, sql, through_worker=True)
        return rows

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
