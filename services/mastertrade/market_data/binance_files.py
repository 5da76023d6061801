"""Importing Binance's public bulk kline files (data.binance.vision), zipped monthly or daily.

A file such as `BTCUSDT-1m-2024-01.zip` (or `BTCUSDT-1m-2024-01-15.zip`) holds one CSV of the
same name, one kline per line in the REST column layout, without a header (a header line, as
some tools add, is skipped). Spot files from 2025 on count time in microseconds; both units are
read. A file is parsed whole before anything is written, so a bad line (named by file and line
number) leaves the database untouched; the rows are then upserted in batches, so importing a
file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from mastertrade.market_data.domain.binance import kline_from_row
from mastertrade.market_data.domain.events import Kline, MalformedEventError
from mastertrade.market_data.store import upsert_klines

FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]{2,20})-(?P<interval>\d+[mhdw])-\d{4}-\d{2}(-\d{2})?\.(zip|csv)$"
)
BATCH = 20_000


class BulkFileError(ValueError):
    """A bulk file that cannot be imported; the message names the file, line and reason."""


def describe_file(path: Path) -> tuple[str, str]:
    """(symbol, interval) from a bulk file's name."""
    match = FILE_NAME.match(path.name)
    if match is None:
        raise BulkFileError(
            f"{path.name}: expected a Binance kline file name such as BTCUSDT-1m-2024-01.zip "
            "or BTCUSDT-1m-2024-01-15.zip"
        )
    return match["symbol"], match["interval"]


def _parse_lines(lines: Sequence[list[str]], name: str, symbol: str, interval: str) -> list[Kline]:
    klines = []
    for number, row in enumerate(lines, start=1):
        if number == 1 and row and not row[0].strip().isdigit():
            continue  # a header line
        if not row:
            continue
        try:
            klines.append(kline_from_row([field.strip() for field in row], symbol, interval))
        except MalformedEventError as error:
            raise BulkFileError(f"{name} line {number}: {error}") from None
    return klines


def read_kline_file(path: Path) -> list[Kline]:
    """Every kline of a bulk file (.zip of one CSV, or the CSV itself)."""
    symbol, interval = describe_file(path)
    try:
        if path.suffix == ".csv":
            text = path.read_text(encoding="ascii")
        else:
            with zipfile.ZipFile(path) as archive:
                members = [name for name in archive.namelist() if name.endswith(".csv")]
                if len(members) != 1:
                    raise BulkFileError(f"{path.name}: expected one CSV inside, found {members}")
                text = archive.read(members[0]).decode("ascii")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise BulkFileError(f"{path.name}: cannot be read: {error}") from None
    return _parse_lines(list(csv.reader(io.StringIO(text))), path.name, symbol, interval)


async def import_kline_files(
    pool: asyncpg.Pool, paths: Sequence[Path], report: Callable[[str], None]
) -> int:
    """Import bulk files one after the other; returns rows new or changed."""
    written = 0
    for path in paths:
        klines = read_kline_file(path)
        changed = 0
        for start in range(0, len(klines), BATCH):
            changed += await upsert_klines(pool, klines[start : start + BATCH])
        report(f"{path.name}: {len(klines)} klines read, {changed} rows new or changed")
        written += changed
    return written
