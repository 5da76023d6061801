"""The `mastertrade` command: serve one service, migrate the database, or run the whole stack.

    mastertrade serve market-data-service [--port 8000] [--host 0.0.0.0]
    mastertrade migrate [--timeout 120]
    mastertrade up [--database-url ...] [--rabbitmq-url ...] [--redis-url ...]
    mastertrade market-data generate [--years 2] | import BTCUSDT-1m-2024-01.zip ...
    mastertrade strategy-shard [--shard N]   (default: JOB_COMPLETION_INDEX, else every free one)

Exit codes: 0 after a clean run or a graceful stop, 1 when the work failed, 2 when the command
line or the settings are wrong (the message names the variable and what it expects).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg
from prometheus_client import disable_created_metrics

from mastertrade.catalog import (
    SERVICES,
    UnknownServiceError,
    find_service,
    load_service_module,
    load_service_settings,
)
from mastertrade.core.bus import TopologyError, apply_topology
from mastertrade.core.logs import configure_logging
from mastertrade.core.server import serve
from mastertrade.core.settings import ServiceSettings, SettingsError, load_settings, redact
from mastertrade.local_stack import StackUrls, run_up
from mastertrade.market_data.commands import (
    BulkFileError,
    CommandError,
    add_market_data_commands,
    run_market_data,
)
from mastertrade.migrations.runner import MigrationError, migrate_database
from mastertrade_model.values import Dependency

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def report(line: str) -> None:
    """One progress line on stdout, flushed at once (it is read live by people and Jobs)."""
    print(f"mastertrade: {line}", flush=True)


def run_serve(name: str, host: str, port: int | None) -> int:
    """Start one service and serve until SIGTERM or Ctrl-C."""
    try:
        spec = find_service(name)
    except UnknownServiceError as error:
        print(f"mastertrade: {error}", file=sys.stderr)
        return EXIT_USAGE
    module = load_service_module(spec)
    try:
        settings = load_service_settings(spec)
    except SettingsError as error:
        print(f"mastertrade: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(spec.name, settings.log_level, settings.log_format)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    started = serve(module.create_app(settings), host, port or spec.port)
    return EXIT_OK if started else EXIT_FAILED


async def _migrate(settings: ServiceSettings, timeout: float) -> None:
    assert settings.database_url is not None
    await migrate_database(settings.database_url, timeout, report)
    if settings.rabbitmq_url:
        await apply_topology(settings.rabbitmq_url, timeout, report)


def run_migrate(timeout: float) -> int:
    """Bring the database schema (and the broker's topology, if RABBITMQ_URL is set) up to date."""
    try:
        settings = load_settings(ServiceSettings, "migrate", (Dependency.DATABASE,))
    except SettingsError as error:
        print(f"mastertrade: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(_migrate(settings, timeout))
    except (MigrationError, TopologyError) as error:
        print(f"mastertrade: migrate failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    report("migrate done")
    return EXIT_OK


def run_market_data_command(args: argparse.Namespace) -> int:
    """`mastertrade market-data generate|import` against DATABASE_URL."""
    try:
        settings = load_settings(ServiceSettings, "market-data", (Dependency.DATABASE,))
    except SettingsError as error:
        print(f"mastertrade: {error}", file=sys.stderr)
        return EXIT_USAGE
    assert settings.database_url is not None
    try:
        run_market_data(settings.database_url, args, report)
    except (CommandError, BulkFileError) as error:
        print(f"mastertrade: market-data: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, asyncpg.PostgresError) as error:
        print(f"mastertrade: market-data failed: {redact(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_strategy_shard(shard: int | None) -> int:
    """`mastertrade strategy-shard`: one shard of the day's generation (an Indexed Job pod)."""
    from mastertrade.strategy.jobs import job_shard, run_shard  # noqa: PLC0415 - numba is heavy
    from mastertrade.strategy.settings import StrategySettings  # noqa: PLC0415

    try:
        settings = load_settings(StrategySettings, "strategy_service", (Dependency.DATABASE,))
        index = shard if shard is not None else job_shard()
    except (SettingsError, ValueError) as error:
        print(f"mastertrade: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging("strategy_service", settings.log_level, settings.log_format)
    try:
        asyncio.run(run_shard(settings, index))
    except (OSError, asyncpg.PostgresError) as error:
        print(f"mastertrade: strategy-shard failed: {redact(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mastertrade", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run one service")
    names = ", ".join(spec.kube_name for spec in SERVICES)
    serve_cmd.add_argument("service", help=f"one of: {names} (dashes or underscores)")
    serve_cmd.add_argument("--port", type=int, default=None, help="default: the seed's port")
    serve_cmd.add_argument("--host", default="0.0.0.0", help="address to listen on")
    migrate_cmd = commands.add_parser("migrate", help="apply database migrations and topology")
    migrate_cmd.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for PostgreSQL/RabbitMQ"
    )
    up_cmd = commands.add_parser("up", help="run the whole stack as local processes")
    up_cmd.add_argument("--database-url", default=None)
    up_cmd.add_argument("--rabbitmq-url", default=None)
    up_cmd.add_argument("--redis-url", default=None)
    up_cmd.add_argument("--host", default="127.0.0.1")
    up_cmd.add_argument("--port-offset", type=int, default=0, help="added to every service's port")
    market_cmd = commands.add_parser(
        "market-data", help="write simulated history or import Binance bulk files"
    )
    add_market_data_commands(market_cmd)
    shard_cmd = commands.add_parser(
        "strategy-shard", help="compute one shard of the day's strategy generation"
    )
    shard_cmd.add_argument(
        "--shard", type=int, default=None, help="default: JOB_COMPLETION_INDEX, else every one"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mastertrade` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args.service, args.host, args.port)
    if args.command == "migrate":
        return run_migrate(args.timeout)
    if args.command == "market-data":
        return run_market_data_command(args)
    if args.command == "strategy-shard":
        return run_strategy_shard(args.shard)
    urls = StackUrls.build(args.database_url, args.rabbitmq_url, args.redis_url)
    return run_up(urls, args.host, args.port_offset)


if __name__ == "__main__":
    sys.exit(main())
