"""Helpers of the data API and gateway benchmarks: scratch infrastructure, `mastertrade serve`
processes, and sequential keep-alive latency sampling with percentiles.

Latency is taken one request at a time on a kept-alive connection (stdlib http.client, little
client overhead), so that it measures the path of one request rather than a queue under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra import create_database, create_vhost, delete_vhost, drop_database, free_port

from mastertrade.migrations.runner import migrate_database

HOST = "127.0.0.1"
MASTERTRADE = Path(sys.executable).with_name("mastertrade")
REDIS_URL = os.environ.get("MASTERTRADE_BENCH_REDIS", "redis://127.0.0.1:6379/15")


@contextlib.contextmanager
def scratch_infrastructure() -> Iterator[dict[str, str]]:
    """A migrated database and a vhost of the run's own, removed at the end."""
    database = create_database("mastertrade_bench")
    vhost = create_vhost("mastertrade_bench")
    try:
        asyncio.run(migrate_database(database, 30, lambda line: None))
        yield {"DATABASE_URL": database, "RABBITMQ_URL": vhost, "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "LOG_FORMAT": "console"}  # fmt: skip
    finally:
        drop_database(database)
        delete_vhost(vhost)


@contextlib.contextmanager
def serving(name: str, env: Mapping[str, str]) -> Iterator[int]:
    """`mastertrade serve <name>` on a free port until healthy; stopped at the end."""
    with serving_process(name, env) as (port, _):
        yield port


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """User + system CPU time the process has used so far (Linux /proc), in seconds: unlike
    wall time, barely inflated when other programs load the machine."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving_process(
    name: str, env: Mapping[str, str]
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`serving`, also giving the process (for its CPU time)."""
    port = free_port()
    process = subprocess.Popen(
        [str(MASTERTRADE), "serve", name, "--host", HOST, "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(port, process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return
            connection.close()
        time.sleep(0.2)
    raise RuntimeError(f"the service on port {port} was not healthy after {timeout}s")


class Client:
    """One kept-alive HTTP/1.1 connection; `get` returns (status, body, seconds)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=30)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes, float]:
        try:
            return self._get(path, headers)
        except (http.client.RemoteDisconnected, ConnectionError):
            # the server closed an idle kept-alive connection: one new connection, once
            self.connection.close()
            return self._get(path, headers)

    def _get(self, path: str, headers: Mapping[str, str] | None) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers=dict(headers or {}))
        response = self.connection.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as an aligned text table (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"
