"""Private PostgreSQL, RabbitMQ and Redis servers that a test may stop and start again.

They run on free ports in temporary folders and never touch the machine's shared instances.
PostgreSQL runs as the `postgres` user (it refuses root) through `runuser`, as DESIGN §7 says.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path


@cache
def postgres_bin() -> Path:
    """The server binaries' folder: Debian keeps initdb and pg_ctl off PATH, per version."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if installed:
        return installed[-1].parent
    found = shutil.which("initdb")
    if found is None:
        raise RuntimeError("PostgreSQL server binaries not found: install Debian's postgresql")
    return Path(found).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Until something accepts connections on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class PrivateRedis:
    """redis-server on its own port, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder), trust auth."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.folder = Path(tempfile.mkdtemp(prefix="mastertrade-pg-", dir="/tmp"))
        self.data = self.folder / "data"
        shutil.chown(self.folder, "postgres", "postgres")
        self.folder.chmod(0o700)
        self._as_postgres(
            str(postgres_bin() / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.folder / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(
            str(postgres_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser", "-u", "postgres", "--", str(postgres_bin() / "pg_ctl"),
                "-D", str(self.data), "-m", "immediate", "-w", "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRabbit:
    """A RabbitMQ node of its own (name, ports, data folder), run as the rabbitmq user.

    `config_for(amqp_port, management_port)` gives the text of a classic rabbitmq.config (the
    chart's, say, with its ports moved here); `plugins` are enabled offline; `env` adds settings
    such as RABBITMQ_DEFAULT_USER.
    """

    def __init__(
        self,
        config_for: Callable[[int, int], str] | None = None,
        plugins: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.management_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.folder = Path(tempfile.mkdtemp(prefix="mastertrade-rmq-", dir="/tmp"))
        (self.folder / "enabled_plugins").write_text(f"[{', '.join(plugins)}].\n")
        config = self.folder / "rabbitmq.config"
        if config_for is not None:
            config.write_text(config_for(self.port, self.management_port))
        for path in self.folder.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")
        shutil.chown(self.folder, "rabbitmq", "rabbitmq")
        self.nodename = f"mastertrade_test_{self.port}@localhost"
        self.env = {
            "HOME": "/var/lib/rabbitmq",
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(config if config_for else self.folder / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_PID_FILE": str(self.folder / "pid"),
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        """The node's log so far."""
        return (self.folder / "log" / f"{self.nodename}.log").read_text()

    def start(self) -> None:
        assignments = [f"{key}={value}" for key, value in self.env.items()]
        self._process = subprocess.Popen(
            ["runuser", "-u", "rabbitmq", "--", "env", *assignments,
             "/usr/lib/rabbitmq/bin/rabbitmq-server"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, timeout=60)

    def stop(self) -> None:
        if self._process is None:
            return
        pid_file = self.folder / "pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        else:
            self._process.terminate()
        self._process.wait(timeout=60)
        self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- scratch databases and vhosts on the machine's shared servers ------------------------------

PG_ADMIN_URL = os.environ.get("MASTERTRADE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
RABBIT_BASE = os.environ.get("MASTERTRADE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


async def _admin(sql: str) -> None:
    import asyncpg  # noqa: PLC0415 - only callers that touch PostgreSQL pay for the import

    connection = await asyncpg.connect(f"{PG_ADMIN_URL}/postgres", timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_database(prefix: str) -> str:
    """A new, empty database on the shared server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return f"{PG_ADMIN_URL}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def create_vhost(prefix: str) -> str:
    """A new vhost on the shared broker, open to guest; returns its AMQP URL."""
    vhost = f"{prefix}_{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return f"{RABBIT_BASE}/{vhost}"


def delete_vhost(url: str) -> None:
    rabbitmqctl("delete_vhost", url.rsplit("/", 1)[1])
