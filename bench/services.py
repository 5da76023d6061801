"""Benchmark: MasterTrade services over HTTP on loopback, beside a bare FastAPI app in the same run.

What it measures, each figure next to its reference measured in the same run:

1. Throughput and p50/p99 latency of `/health`, `/livez` and `/api/v1/limits` of risk_manager
   (a real endpoint that touches no database, broker or cache) served by `mastertrade serve`,
   next to a bare FastAPI app answering the same paths with equivalent JSON under the very same
   uvicorn settings (`mastertrade.core.server.build_server`). The load comes from a separate
   process: a raw asyncio HTTP/1.1 keep-alive client with CONNECTIONS connections, a warm-up,
   then a fixed duration per case. Target: the service at least 0.8x the bare app's throughput.
2. Start-up time to healthy (spawn of the process to the first 200 on the health path) of each
   of the 9 services with the infrastructure up, median of several runs, next to the bare app's.
   Target: under 2 s.
3. RSS of each idle service after start-up (VmRSS from /proc), next to the bare app's.
   Target: under 150 MiB.

The services run against the machine's PostgreSQL, RabbitMQ and Redis, in a database
(`mastertrade_bench_<random>`) and a RabbitMQ vhost created for the run, migrated with
`mastertrade migrate`, and removed at the end; every process started is stopped, also on Ctrl-C.

    .venv/bin/python bench/services.py [--duration 5] [--connections 32] [--startup-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra import create_database, create_vhost, delete_vhost, drop_database

HOST = "127.0.0.1"
REDIS_URL = os.environ.get("MASTERTRADE_BENCH_REDIS", "redis://127.0.0.1:6379/15")

CONNECTIONS = 32
WARMUP_SECONDS = 1.0
DURATION_SECONDS = 5.0
STARTUP_RUNS = 3
IDLE_SECONDS = 1.5  # after healthy, before RSS is read
HEALTHY_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0

THROUGHPUT_SERVICE = "risk_manager"
THROUGHPUT_PATHS = ("/health", "/livez", "/api/v1/limits")
TARGET_RATIO = 0.8
TARGET_STARTUP_SECONDS = 2.0
TARGET_RSS_MIB = 150.0

SCRIPT = Path(__file__).resolve()
MASTERTRADE = Path(sys.executable).with_name("mastertrade")
BARE = "bare FastAPI"


class BenchError(RuntimeError):
    """The bench could not measure (a process died, an answer was wrong)."""


# --- the bare reference app -------------------------------------------------------------------

BARE_LIMITS: dict[str, Any] = {
    "max_position_size_pct": 0.20,
    "max_portfolio_drawdown_pct": 0.15,
    "circuit_breaker_enabled": True,
}
BARE_STARTED = time.monotonic()


def build_bare_app() -> FastAPI:
    """The reference: FastAPI answering the measured paths with equivalent, static JSON."""
    app = FastAPI(title="bare reference")

    @app.get("/health")
    async def health() -> JSONResponse:
        body = {
            "status": "healthy",
            "service": "risk_manager",
            "version": "0.1.0",
            "uptime": int(time.monotonic() - BARE_STARTED),
            "checks": {"database": "ok", "rabbitmq": "ok"},
        }
        return JSONResponse(body)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/api/v1/limits")
    async def limits() -> dict[str, Any]:
        return BARE_LIMITS

    return app


def run_bare(port: int) -> int:
    """Serve the bare app with the services' own uvicorn settings until SIGTERM."""
    from mastertrade.core.server import serve  # noqa: PLC0415 (only the bare app needs it)

    return 0 if serve(build_bare_app(), HOST, port) else 1


# --- the load generator (runs in its own process) ---------------------------------------------


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start < 0:
        raise BenchError(f"no content-length in {head!r}")
    end = lowered.find(b"\r\n", start + 2)
    return int(lowered[start + len(b"\r\ncontent-length:") : end])


@dataclass
class LoadTally:
    """What the connections of one load run recorded inside the measured window."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


async def _connection(
    port: int, request: bytes, record_from: float, stop_at: float, tally: LoadTally
) -> None:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        tally.errors += 1
        return
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head))
            if started >= record_from:
                tally.latencies.append(time.perf_counter() - started)
                status = int(head[9:12])
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        tally.errors += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


async def _load(port: int, path: str, connections: int, warmup: float, duration: float) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: */*\r\n\r\n".encode()
    tally = LoadTally()
    now = time.perf_counter()
    record_from, stop_at = now + warmup, now + warmup + duration
    cpu_before = 0.0

    async def mark_cpu() -> None:
        nonlocal cpu_before
        await asyncio.sleep(max(0.0, record_from - time.perf_counter()))
        cpu_before = time.process_time()

    marker = asyncio.create_task(mark_cpu())
    await asyncio.gather(
        *(_connection(port, request, record_from, stop_at, tally) for _ in range(connections))
    )
    await marker
    latencies = sorted(tally.latencies)
    ok = sum(count for status, count in tally.statuses.items() if 200 <= status < 300)
    result = {
        "requests": len(latencies),
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "not_2xx": len(latencies) - ok,
        "errors": tally.errors,
        "client_cpu": (time.process_time() - cpu_before) / duration,
    }
    print(json.dumps(result), flush=True)


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def http_status(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """Status and body of GET path, or None when nothing answers."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return None
    finally:
        connection.close()


def rss_mib(pid: int) -> float:
    """VmRSS of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A process serving HTTP on `port`, its log in `log`."""

    label: str
    process: subprocess.Popen[bytes]
    port: int
    health_path: str
    log: Path
    startup_seconds: float = 0.0


class Processes:
    """Every child the bench starts; `stop_all` ends those still running (SIGTERM, then KILL)."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, command: Sequence[str], stdout: IO[bytes] | int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command,
            env=self.env,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout != subprocess.PIPE else None,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops them itself
        )
        self.children.append(process)
        return process

    def start_server(self, label: str, command: Sequence[str], port: int, path: str) -> Server:
        """Spawn a server and wait for the first 200 on `path`; the time it took is recorded."""
        log = self.logs / f"{label.replace(' ', '_')}-{port}.log"
        with log.open("wb") as sink:
            started = time.perf_counter()
            process = self.spawn(command, sink)
        while True:
            answer = http_status(port, path, timeout=1.0)
            elapsed = time.perf_counter() - started
            if answer is not None and answer[0] == 200:
                return Server(label, process, port, path, log, elapsed)
            if process.poll() is not None or elapsed > HEALTHY_TIMEOUT:
                self.stop(process)
                tail = log.read_text(errors="replace")[-2000:]
                raise BenchError(f"{label} did not become healthy on {path}:\n{tail}")
            time.sleep(0.01)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.children:
            self.children.remove(process)

    def stop_all(self) -> None:
        for process in list(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in list(self.children):
            self.stop(process)


def service_command(name: str, port: int) -> list[str]:
    return [str(MASTERTRADE), "serve", name, "--host", HOST, "--port", str(port)]


def bare_command(port: int) -> list[str]:
    return [sys.executable, str(SCRIPT), "bare", "--port", str(port)]


# --- infrastructure ---------------------------------------------------------------------------


@contextlib.contextmanager
def infrastructure() -> Iterator[dict[str, str]]:
    """A migrated database and a vhost of the run's own; the environment of the services."""
    database_url = create_database("mastertrade_bench")
    rabbitmq_url = ""
    try:
        rabbitmq_url = create_vhost("mastertrade_bench")
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "RABBITMQ_URL": rabbitmq_url,
            "REDIS_URL": REDIS_URL,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "console",
            # market_data_service's first-start history (90 days by default) is a one-off
            # bulk write (bench/market_data_ingest.py measures it), not idle work
            "MARKET_DATA_BACKFILL_DAYS": "1",
        }
        migrate = subprocess.run(
            [str(MASTERTRADE), "migrate", "--timeout", "30"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise BenchError(f"mastertrade migrate failed:\n{migrate.stdout}{migrate.stderr}")
        say("a database and a vhost of the run's own created and migrated")
        yield env
    finally:
        if rabbitmq_url:
            delete_vhost(rabbitmq_url)
        drop_database(database_url)
        say("the run's database and vhost removed")


# --- the measurements -------------------------------------------------------------------------


def say(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


@dataclass
class LoadResult:
    path: str
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    not_2xx: int
    errors: int
    server_cpu: float
    client_cpu: float


def run_load(procs: Processes, server: Server, path: str, args: argparse.Namespace) -> LoadResult:
    """One load run against `server`, the client in its own process."""
    command = [
        sys.executable, str(SCRIPT), "load", "--port", str(server.port), "--path", path,
        "--connections", str(args.connections), "--warmup", str(args.warmup),
        "--duration", str(args.duration),
    ]  # fmt: skip
    cpu_before = cpu_seconds(server.process.pid)
    client = procs.spawn(command, subprocess.PIPE)
    output, _ = client.communicate(timeout=args.warmup + args.duration + 60)
    procs.children.remove(client)
    server_cpu = (cpu_seconds(server.process.pid) - cpu_before) / (args.warmup + args.duration)
    if client.returncode != 0:
        raise BenchError(f"the load generator failed on {server.label} {path}")
    figures = json.loads(output)
    return LoadResult(
        path,
        server.label,
        figures["rps"],
        figures["p50_ms"],
        figures["p99_ms"],
        figures["not_2xx"],
        figures["errors"],
        server_cpu,
        figures["client_cpu"],
    )


def check_equivalent(bare: Server, service: Server) -> None:
    """Both servers answer every measured path with 200 and JSON of the same shape."""
    for path in THROUGHPUT_PATHS:
        answers = [http_status(server.port, path) for server in (bare, service)]
        bodies = []
        for server, answer in zip((bare, service), answers, strict=True):
            if answer is None or answer[0] != 200:
                raise BenchError(f"{server.label} answers {answer!r} on {path}")
            bodies.append(json.loads(answer[1]))
        if list(bodies[0]) != list(bodies[1]):
            raise BenchError(f"{path}: bare {bodies[0]} and service {bodies[1]} differ in shape")
        if path != "/health" and bodies[0] != bodies[1]:
            raise BenchError(f"{path}: bare {bodies[0]} != service {bodies[1]}")


def measure_throughput(procs: Processes, args: argparse.Namespace) -> list[LoadResult]:
    say(f"throughput: {THROUGHPUT_SERVICE} and the bare app, {len(THROUGHPUT_PATHS)} paths")
    bare_port, service_port = free_port(), free_port()
    bare = procs.start_server(BARE, bare_command(bare_port), bare_port, "/health")
    service = procs.start_server(
        THROUGHPUT_SERVICE,
        service_command(THROUGHPUT_SERVICE, service_port),
        service_port,
        "/health",
    )
    results = []
    try:
        check_equivalent(bare, service)
        for path in THROUGHPUT_PATHS:
            for server in (bare, service):
                say(f"  load {server.label} {path}")
                results.append(run_load(procs, server, path, args))
    finally:
        procs.stop(service.process)
        procs.stop(bare.process)
    return results


@dataclass
class StartupResult:
    label: str
    startups: list[float]
    stops: list[float]
    rss_mib: float


def measure_startup(
    procs: Processes, label: str, command_for: Any, path: str, runs: int
) -> StartupResult:
    """`runs` cold starts to the first 200 on `path`; RSS after idling on the last one."""
    startups: list[float] = []
    stops: list[float] = []
    rss = 0.0
    for run in range(runs):
        port = free_port()
        server = procs.start_server(label, command_for(port), port, path)
        startups.append(server.startup_seconds)
        if run == runs - 1:
            time.sleep(IDLE_SECONDS)
            rss = rss_mib(server.process.pid)
        stopping = time.perf_counter()
        procs.stop(server.process)
        stops.append(time.perf_counter() - stopping)
        if server.process.returncode != 0:
            raise BenchError(f"{label} exited with {server.process.returncode} after SIGTERM")
    say(f"  {label}: start-up {statistics.median(startups):.2f} s, RSS {rss:.1f} MiB")
    return StartupResult(label, startups, stops, rss)


def measure_startups(procs: Processes, runs: int) -> list[StartupResult]:
    from mastertrade.catalog import SERVICES  # noqa: PLC0415 (the bench's own process only)

    say(f"start-up and RSS: the bare app and {len(SERVICES)} services, {runs} runs each")
    results = [measure_startup(procs, BARE, bare_command, "/health", runs)]
    for spec in SERVICES:

        def command_for(port: int, name: str = spec.name) -> list[str]:
            return service_command(name, port)

        results.append(measure_startup(procs, spec.name, command_for, spec.health_path, runs))
    return results


# --- the report -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(
            cell.ljust(width) if index in {0, 1} else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in (headers, ["-" * width for width in widths], *rows)
    ]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report_throughput(results: Sequence[LoadResult], args: argparse.Namespace) -> None:
    print(
        f"\nHTTP on loopback: {args.connections} keep-alive connections, {args.warmup:g} s warm-up"
        f" + {args.duration:g} s per case, load generator in its own process (asyncio, raw"
        " HTTP/1.1);\nthe service is `mastertrade serve risk_manager`, the reference a bare"
        " FastAPI app under the same uvicorn settings"
    )
    bare = {result.path: result for result in results if result.label == BARE}
    rows = []
    for result in results:
        reference = bare[result.path]
        ratio = result.rps / reference.rps if reference.rps else 0.0
        is_bare = result.label == BARE
        rows.append(
            [
                result.path,
                result.label,
                f"{result.rps:,.0f}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                str(result.not_2xx + result.errors),
                f"{result.server_cpu:.0%}",
                f"{result.client_cpu:.0%}",
                "1.00x" if is_bare else f"{ratio:.2f}x",
                "" if is_bare else verdict(ratio >= TARGET_RATIO),
            ]
        )
    headers = ["path", "server", "req/s", "p50 ms", "p99 ms", "errors", "srv CPU", "load CPU"]
    print(table([*headers, "vs bare", f">= {TARGET_RATIO}x"], rows))


def report_startups(results: Sequence[StartupResult]) -> None:
    runs = len(results[0].startups)
    print(
        f"\nStart-up (spawn -> first 200 on the health path, infrastructure up; median of {runs}"
        f" runs), stop (SIGTERM -> exit), and RSS idle {IDLE_SECONDS:g} s after healthy"
    )
    bare = results[0]
    rows = []
    for result in results:
        median = statistics.median(result.startups)
        is_bare = result.label == BARE
        rows.append(
            [
                result.label,
                "reference" if is_bare else "service",
                f"{median:.2f}",
                f"{min(result.startups):.2f}",
                f"{max(result.startups):.2f}",
                f"{statistics.median(result.stops):.2f}",
                f"{result.rss_mib:.1f}",
                f"{result.rss_mib / bare.rss_mib:.1f}x",
                "" if is_bare else verdict(median < TARGET_STARTUP_SECONDS),
                "" if is_bare else verdict(result.rss_mib < TARGET_RSS_MIB),
            ]
        )
    headers = ["process", "kind", "start s", "min s", "max s", "stop s", "RSS MiB", "vs bare"]
    targets = [f"< {TARGET_STARTUP_SECONDS:g} s", f"< {TARGET_RSS_MIB:g} MiB"]
    print(table([*headers, *targets], rows))


def run_bench(args: argparse.Namespace) -> int:
    if not MASTERTRADE.exists():
        say(f"{MASTERTRADE} not found: run `make setup` first")
        return 2
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="mastertrade-bench-") as scratch,
        infrastructure() as env,
    ):
        procs = Processes(Path(scratch), env)
        try:
            load = measure_throughput(procs, args)
            startups = measure_startups(procs, args.startup_runs)
        finally:
            procs.stop_all()
    report_throughput(load, args)
    report_startups(startups)
    print(f"\n(bench took {time.perf_counter() - started:.0f} s on {os.cpu_count()} CPUs)")
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command")
    bare = commands.add_parser("bare", help="(internal) serve the bare reference app")
    bare.add_argument("--port", type=int, required=True)
    load = commands.add_parser("load", help="(internal) the load generator")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--path", required=True)
    for target in (parser, load):
        target.add_argument("--connections", type=int, default=CONNECTIONS)
        target.add_argument("--warmup", type=float, default=WARMUP_SECONDS)
        target.add_argument("--duration", type=float, default=DURATION_SECONDS)
    parser.add_argument("--startup-runs", type=int, default=STARTUP_RUNS)
    args = parser.parse_args(argv)
    if args.command == "bare":
        return run_bare(args.port)
    if args.command == "load":
        asyncio.run(_load(args.port, args.path, args.connections, args.warmup, args.duration))
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in background
    try:
        return run_bench(args)
    except KeyboardInterrupt:
        say("interrupted; everything it started is stopped")
        return 130
    except BenchError as error:
        say(f"failed: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
