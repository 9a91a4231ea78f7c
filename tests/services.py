"""Private service instances for tests that stop, restart or break a service: a PostgreSQL cluster from
`initdb`, a `redis-server`, a Mosquitto, each on a free port with its files in a directory of the test's own.
The shared services on localhost:5432/6379/1883 are never touched by these.

    with PrivateRedis(tmp_path / "redis") as redis_server:
        redis_server.stop()
        ...
        redis_server.start()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
# initdb and postgres refuse to run as root; as root, the cluster belongs to this system user.
PG_SYSTEM_USER = "postgres"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick for an ephemeral bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(interval)


class _Server:
    """A server process of the test's own, started in its own session so nothing else's signals reach it."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = directory / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.directory
            )
        wait_until(self._up, timeout=timeout, what=f"{self.name} did not listen on port {self.port}")
        return self

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
        return port_open(self.port)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server the way its service manager would (SIGTERM), and wait until it is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class PrivateRedis(_Server):
    """redis-server without persistence: a restart starts empty, the harshest case for the queues in it."""

    name = "redis"

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
        ]  # fmt: skip

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


class PrivateMosquitto(_Server):
    """Mosquitto with a minimal configuration: one plain listener, anonymous clients, persistence in its directory."""

    name = "mosquitto"

    def command(self) -> list[str]:
        config = self.directory / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.directory}/\n"
            "max_queued_messages 100000\n"
        )
        return [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)]

    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class PrivatePostgres:
    """A PostgreSQL cluster made by `initdb` in a temporary directory of its own, run with `pg_ctl`, reached over
    TCP on a free port with the trust method (it only listens on 127.0.0.1). As root the cluster belongs to the
    `postgres` system user, so its directory is made outside the (root-only) pytest temporary tree."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="telemetry-test-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.log_path = self.directory / "postgres.log"
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None
        if self.user is not None:
            shutil.chown(self.directory, self.user)

    def _run(self, *command: str, timeout: float = 60.0) -> None:
        done = subprocess.run(command, user=self.user, capture_output=True, timeout=timeout, cwd=self.directory)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{output}\n{self.log()}")

    def init(self) -> Self:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
            "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.directory}'\n"
                # A test cluster: durability is not what is under test, speed is welcome.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n"
                "max_connections = 60\n"
            )
        return self

    def start(self, timeout: float = 30.0) -> Self:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", str(int(timeout)),
            "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session and shuts down cleanly; `immediate` is a crash (recovery on the next start)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, *, down_for: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def create_database(self, name: str) -> str:
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.init().start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the cluster at once and delete its files."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
