"""`mastertrade market-data ...`: write simulated history, import Binance bulk files.

    mastertrade market-data generate [--days N | --years N] [--end 2026-01-01] [--seed 42]
                                     [--symbols BTCUSDT,ETHBTC,ETHUSDT]
    mastertrade market-data import FILE.zip [FILE.zip ...]

Both write to DATABASE_URL (migrated) and report progress on stdout. Generating continues any
stored history of the symbols (as the service does) or starts `--days` before `--end`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from mastertrade.market_data.binance_files import BulkFileError, import_kline_files
from mastertrade.market_data.domain import InvalidSymbolError, normalise_symbol
from mastertrade.market_data.domain.simulator import SYMBOLS, instrument_columns
from mastertrade.market_data.history import simulated_history

Report = Callable[[str], None]


class CommandError(Exception):
    """The command line is wrong; the message says how to fix it."""


def add_market_data_commands(parser: argparse.ArgumentParser) -> None:
    """The `generate` and `import` subcommands."""
    commands = parser.add_subparsers(dest="market_data_command", required=True)
    generate = commands.add_parser("generate", help="write simulated 1-minute candles")
    span = generate.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, default=None, help="days of history (default 90)")
    span.add_argument("--years", type=float, default=None, help="years of history")
    generate.add_argument("--end", default=None, help="UTC date or time to end at (default now)")
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--symbols", default=",".join(SYMBOLS), help="comma-separated")
    importer = commands.add_parser("import", help="import Binance bulk kline files (.zip/.csv)")
    importer.add_argument("files", nargs="+", type=Path)


def _end(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--end: {text!r} is not a date such as 2026-01-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_generate(args: argparse.Namespace) -> tuple[tuple[str, ...], int, int, datetime]:
    """Symbols, seed, days and end time of `generate`, checked."""
    days = round(args.years * 365) if args.years is not None else (args.days or 90)
    if not 1 <= days <= 365 * 20:
        raise CommandError(f"history of {days} days: choose between 1 day and 20 years")
    if args.seed < 0:
        raise CommandError("--seed must be 0 or more")
    try:
        symbols = tuple(normalise_symbol(s) for s in args.symbols.split(",") if s.strip())
        instrument_columns(symbols)
    except (InvalidSymbolError, ValueError) as error:
        raise CommandError(f"--symbols: {error}") from None
    return symbols, args.seed, days, _end(args.end)


async def generate(database_url: str, args: argparse.Namespace, report: Report) -> int:
    symbols, seed, days, end = parse_generate(args)
    started = time.monotonic()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:

        def progress(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            report(f"{done}/{total} minutes x {len(symbols)} symbols ({elapsed:.1f}s)")

        _, written = await simulated_history(
            pool, symbols=symbols, seed=seed, days=days, now=end, progress=progress
        )
    finally:
        await pool.close()
    report(f"{written} candles written in {time.monotonic() - started:.1f}s")
    return written


async def import_files(database_url: str, files: list[Path], report: Report) -> int:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        return await import_kline_files(pool, files, report)
    finally:
        await pool.close()


def run_market_data(database_url: str, args: argparse.Namespace, report: Report) -> None:
    """Run a `market-data` subcommand; raises CommandError or BulkFileError on bad input."""
    if args.market_data_command == "generate":
        parse_generate(args)  # fail on a bad command line before connecting
        asyncio.run(generate(database_url, args, report))
        return
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        raise CommandError(f"no such file: {', '.join(missing)}")
    written = asyncio.run(import_files(database_url, args.files, report))
    report(f"import done: {written} rows new or changed")


__all__ = ["BulkFileError", "CommandError", "add_market_data_commands", "run_market_data"]
