"""`mastertrade up`: the whole stack as local processes on local PostgreSQL, RabbitMQ, Redis.

The way to run MasterTrade without Kubernetes. It creates the database if it is missing,
migrates it, declares the topology, starts every service of the catalog as a `mastertrade serve`
child process (logs prefixed with the service's name), waits for each to be healthy, and on
Ctrl-C or SIGTERM stops them all gracefully (SIGTERM, then SIGKILL after a grace period).
Two seed services share port 8080; locally the later one moves to the next free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from mastertrade.catalog import SERVICES
from mastertrade.core.bus import TopologyError, apply_topology
from mastertrade.core.service import ServiceSpec
from mastertrade.core.settings import redact
from mastertrade.migrations.runner import MigrationError, migrate_database

STOP_GRACE_SECONDS = 15.0
HEALTHY_TIMEOUT_SECONDS = 120.0
"""How long the whole stack may take to become healthy (`--healthy-timeout`): a first start
backfills history while eight other services start beside it on a small machine."""


def say(line: str) -> None:
    print(f"mastertrade up: {line}", flush=True)


@dataclass(frozen=True)
class StackUrls:
    """Where the local infrastructure is."""

    database: str
    rabbitmq: str
    redis: str

    @classmethod
    def build(cls, database: str | None, rabbitmq: str | None, redis: str | None) -> StackUrls:
        """Given URLs, else the environment's, else the local defaults."""
        return cls(
            database=database
            or os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mastertrade"),
            rabbitmq=rabbitmq
            or os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            redis=redis or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        )


def plan_ports(services: tuple[ServiceSpec, ...], offset: int = 0) -> dict[str, int]:
    """Seed port + offset for each service; a port already taken moves to the next free one."""
    plan: dict[str, int] = {}
    for spec in services:
        port = spec.port + offset
        while port in plan.values():
            port += 1
        plan[spec.name] = port
    return plan


def build_env(urls: StackUrls, ports: dict[str, int], host: str) -> dict[str, str]:
    """The environment every child gets: URLs of infrastructure and of each other."""
    env = dict(os.environ)
    env.setdefault("LOG_FORMAT", "console")
    env.update(DATABASE_URL=urls.database, RABBITMQ_URL=urls.rabbitmq, REDIS_URL=urls.redis)
    for spec in SERVICES:
        for variable, upstream in spec.upstream_variables.items():
            if upstream in ports:
                env[variable] = f"http://{host}:{ports[upstream]}"
    return env


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when the server does not have it yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        return
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            say(f"creating database {name}")
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _pump(prefix: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.write(f"{prefix} {line.decode(errors='replace')}")
        sys.stdout.flush()


@dataclass
class Child:
    """One running service process."""

    spec: ServiceSpec
    port: int
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]


async def start_child(spec: ServiceSpec, port: int, host: str, env: dict[str, str]) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mastertrade.cli", "serve", spec.name,
        "--port", str(port), "--host", host,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    pump = asyncio.create_task(_pump(f"[{spec.name}]", process.stdout))
    return Child(spec, port, process, pump)


async def wait_healthy(child: Child, host: str, timeout: float) -> bool:
    """Poll the child's health endpoint until it answers 200, it exits, or time runs out."""
    url = f"http://{host}:{child.port}{child.spec.health_path}"
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline and child.process.returncode is None:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return True
            await asyncio.sleep(0.2)
    return False


async def stop_children(children: list[Child]) -> None:
    """SIGTERM every child, wait for them, SIGKILL those past the grace period."""
    for child in children:
        if child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            code = await asyncio.wait_for(child.process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            child.process.kill()
            code = await child.process.wait()
        await child.pump
        say(f"stopped {child.spec.name} (exit {code})")


async def _prepare(urls: StackUrls) -> None:
    say(f"database {redact(urls.database)}, broker {redact(urls.rabbitmq)}, cache {urls.redis}")
    await ensure_database(urls.database)
    await migrate_database(urls.database, 60.0, say)
    await apply_topology(urls.rabbitmq, 60.0, say)


async def _wait_for_stop(children: list[Child]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exits = [asyncio.create_task(child.process.wait()) for child in children]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
    for task in [stopper, *exits]:
        task.cancel()
    if stopper not in done:
        say("a service exited on its own; stopping the stack")
    else:
        say("stopping")


async def up(urls: StackUrls, host: str, port_offset: int, healthy_timeout: float) -> int:
    """Run the stack until a signal; 0 when everything started and stopped cleanly."""
    await _prepare(urls)
    ports = plan_ports(SERVICES, port_offset)
    env = build_env(urls, ports, host)
    children: list[Child] = []
    healthy = True
    try:
        for spec in SERVICES:
            say(f"starting {spec.name} on port {ports[spec.name]}")
            children.append(await start_child(spec, ports[spec.name], host, env))
        deadline = time.monotonic() + healthy_timeout
        for child in children:
            ok = await wait_healthy(child, host, max(deadline - time.monotonic(), 1.0))
            healthy = healthy and ok
            state = "healthy" if ok else "NOT healthy"
            say(f"{child.spec.name} {state} at http://{host}:{child.port}{child.spec.health_path}")
        if healthy:
            say(f"MasterTrade is up: {len(children)} services; press Ctrl-C to stop")
            await _wait_for_stop(children)
    finally:
        await stop_children(children)
    return 0 if healthy else 1


def run_up(
    urls: StackUrls, host: str, port_offset: int, healthy_timeout: float = HEALTHY_TIMEOUT_SECONDS
) -> int:
    """Entry point of `mastertrade up`."""
    try:
        return asyncio.run(up(urls, host, port_offset, healthy_timeout))
    except (MigrationError, TopologyError, OSError, asyncpg.PostgresError) as error:
        say(f"failed: {error}")
        return 1
