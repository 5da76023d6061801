"""Market data storage against a real PostgreSQL: idempotent COPY upserts, bulk history,
Binance bulk-file import, and the generate/import commands."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from mastertrade.cli import main
from mastertrade.market_data.binance_files import BulkFileError, import_kline_files
from mastertrade.market_data.bulk import write_simulated
from mastertrade.market_data.domain.events import BookTicker, Trade
from mastertrade.market_data.domain.market import SimulatedMarket
from mastertrade.market_data.domain.simulator import block_table, instrument_columns
from mastertrade.market_data.history import simulated_history
from mastertrade.market_data.store import insert_book_tickers, insert_trades, upsert_klines
from tests.fakes.binance import kline_row

pytestmark = pytest.mark.infra
START = 29_000_000


async def test_copy_upserts_are_idempotent_and_keep_the_newest_candle(pool: asyncpg.Pool) -> None:
    market = SimulatedMarket(1, START)
    block = market.generate(50)
    klines = list(block.klines())
    assert await upsert_klines(pool, klines) == 250
    assert await upsert_klines(pool, klines) == 0  # the same batch again changes nothing
    corrected = replace(klines[0], close=klines[0].high, volume=klines[0].volume + 1)
    assert await upsert_klines(pool, [corrected, *klines[1:3]]) == 1
    row = await pool.fetchrow(
        "SELECT close, volume, count(*) OVER () AS n FROM candles WHERE symbol = $1 "
        "AND open_time = $2",
        corrected.symbol,
        corrected.open_time,
    )
    assert row is not None and (row["close"], row["volume"]) == (corrected.close, corrected.volume)
    assert await pool.fetchval("SELECT count(*) FROM candles") == 250

    events = market.live_events(market.generate(1), 0)
    trades = [event for _, event in events if isinstance(event, Trade)]
    books = [event for _, event in events if isinstance(event, BookTicker)]
    assert await insert_trades(pool, trades) == len(trades) == 30
    assert await insert_trades(pool, trades + trades) == 0
    assert await insert_book_tickers(pool, books) == 30
    assert await insert_book_tickers(pool, books) == 0
    stored = await pool.fetchrow("SELECT price, quantity, side FROM trades ORDER BY id LIMIT 1")
    assert stored is not None and stored["price"] == trades[0].price


async def test_bulk_history_equals_the_exact_decimals_and_is_idempotent(
    pool: asyncpg.Pool,
) -> None:
    block = SimulatedMarket(4, START).generate(2000)
    table = block_table(block, instrument_columns(["BTCUSDT", "ETHBTC", "SOLUSDT"]))
    async with pool.acquire() as connection:
        assert await write_simulated(connection, table) == 6000
        assert await write_simulated(connection, table) == 0
    # the same candles through the Decimal path change nothing: the values are identical
    wanted = instrument_columns(["BTCUSDT", "ETHBTC", "SOLUSDT"])
    assert await upsert_klines(pool, list(block.klines(wanted))) == 0
    row = await pool.fetchrow(
        "SELECT open, quote_volume, close_time - open_time AS span FROM candles "
        "WHERE symbol = 'ETHBTC' ORDER BY open_time LIMIT 1"
    )
    first = block.kline(0, wanted[1])
    assert row is not None
    assert str(row["open"]) == str(first.open)  # same scale: 0.05000, not 0.05
    assert row["quote_volume"] == first.quote_volume
    assert row["span"].total_seconds() == pytest.approx(59.999)


def write_bulk_zip(folder: Path, name: str, rows: list[list[object]], header: bool = False) -> Path:
    """A file laid out as data.binance.vision's: NAME.zip holding NAME.csv, no header."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if header:
        writer.writerow(["open_time", "open", "high", "low", "close", "volume", "close_time",
                         "quote_volume", "count", "taker_buy_volume",
                         "taker_buy_quote_volume", "ignore"])  # fmt: skip
    writer.writerows(rows)
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.csv", text.getvalue())
    return path


def month_rows(
    symbol: str, first_ms: int, count: int, micros: bool = False, step: int = 60_000
) -> list[list[object]]:
    rows = [kline_row(symbol, first_ms + i * step, step) for i in range(count)]
    if micros:  # spot files from 2025 on count microseconds
        rows = [[r[0] * 1000, *r[1:6], r[6] * 1000 + 999, *r[7:]] for r in rows]
    return rows


async def test_binance_bulk_files_import_exactly_once(pool: asyncpg.Pool, tmp_path: Path) -> None:
    january = write_bulk_zip(
        tmp_path, "BTCUSDT-1h-2024-01", month_rows("BTCUSDT", 1704067200000, 744, step=3_600_000)
    )
    daily = write_bulk_zip(
        tmp_path,
        "ETHUSDT-1m-2025-01-01",
        month_rows("ETHUSDT", 1735689600000, 1440, micros=True),
        header=True,
    )
    lines: list[str] = []
    assert await import_kline_files(pool, [january, daily], lines.append) == 744 + 1440
    assert await import_kline_files(pool, [january], lines.append) == 0
    assert "744 klines read, 0 rows new or changed" in lines[-1]
    assert await pool.fetchval("SELECT count(*) FROM candles WHERE interval = '1h'") == 744
    first = await pool.fetchrow(
        "SELECT open_time, open, trade_count FROM candles WHERE symbol = 'ETHUSDT' "
        "ORDER BY open_time LIMIT 1"
    )
    assert first is not None
    assert first["open_time"].isoformat() == "2025-01-01T00:00:00+00:00"
    assert first["open"] == Decimal(kline_row("ETHUSDT", 1735689600000)[1])


async def test_a_bad_bulk_line_is_named_and_nothing_is_written(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rows = month_rows("BTCUSDT", 1704067200000, 100)
    rows[57][4] = "NaN"
    path = write_bulk_zip(tmp_path, "BTCUSDT-1m-2024-01", rows)
    with pytest.raises(
        BulkFileError, match=r"BTCUSDT-1m-2024-01.zip line 58: close: .*not a finite number"
    ):
        await import_kline_files(pool, [path], lambda line: None)
    assert await pool.fetchval("SELECT count(*) FROM candles") == 0
    with pytest.raises(BulkFileError, match="expected a Binance kline file name"):
        await import_kline_files(pool, [tmp_path / "prices.zip"], lambda line: None)


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(["market-data", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_and_import_commands(
    market_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generate = ("generate", "--days", "3", "--end", "2025-06-01", "--symbols", "BTCUSDT,ETHBTC")
    code, out, err = run_cli(capsys, monkeypatch, market_db, *generate, "--seed", "5")
    assert code == 0, err
    assert "8640 candles written" in out
    code, out, _ = run_cli(capsys, monkeypatch, market_db, *generate)
    assert "0 candles written" in out  # it continues the stored history: nothing is left
    code, _, err = run_cli(capsys, monkeypatch, market_db, "generate", "--symbols", "DOGEUSDT")
    assert code == 2 and "has no DOGEUSDT" in err
    path = write_bulk_zip(
        tmp_path, "SOLUSDT-1m-2024-02-03", month_rows("SOLUSDT", 1706918400000, 60)
    )
    code, out, err = run_cli(capsys, monkeypatch, market_db, "import", str(path))
    assert code == 0, err
    assert "import done: 60 rows new or changed" in out
    code, _, err = run_cli(capsys, monkeypatch, market_db, "import", str(tmp_path / "no.zip"))
    assert code == 2 and "no such file" in err


async def test_a_gap_longer_than_the_backfill_window_is_filled_for_the_window_only(
    pool: asyncpg.Pool,
) -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    _, first = await simulated_history(pool, symbols=["BTCUSDT"], seed=1, days=1,
                                       now=now - timedelta(days=10))  # fmt: skip
    _, gap = await simulated_history(pool, symbols=["BTCUSDT"], seed=1, days=2, now=now)
    assert (first, gap) == (1440, 2880)
    resumed = await pool.fetchval(
        "SELECT min(open_time) FROM candles WHERE open_time > $1", now - timedelta(days=9)
    )
    assert resumed == now - timedelta(days=2)


async def test_a_symbol_added_later_gets_its_history_joined_to_the_live_market(
    pool: asyncpg.Pool,
) -> None:
    """BTCUSDT has a day of history; ETHUSDT and ETHBTC are added an hour later. Each added
    symbol gets the same day of history, minute after minute, ending at the close its first
    live minute opens from (no jump at the join), and BTCUSDT's stored history is untouched."""
    now = datetime(2025, 6, 1, tzinfo=UTC)
    join = now - timedelta(hours=1)
    await simulated_history(pool, symbols=["BTCUSDT"], seed=3, days=1, now=join)
    btc_before = await pool.fetch(
        "SELECT open_time, open, high, low, close, volume FROM candles WHERE symbol = 'BTCUSDT' "
        "ORDER BY open_time"
    )
    market, written = await simulated_history(
        pool, symbols=["BTCUSDT", "ETHUSDT", "ETHBTC"], seed=3, days=1, now=now
    )
    btc_after = await pool.fetch(
        "SELECT open_time, open, high, low, close, volume FROM candles WHERE symbol = 'BTCUSDT' "
        "AND open_time < $1 ORDER BY open_time", join,
    )  # fmt: skip
    assert btc_after == btc_before
    assert written == 2 * 1440 + 60  # the added symbols' day, and everyone's last hour
    for symbol in ("ETHUSDT", "ETHBTC"):
        rows = await pool.fetch(
            "SELECT open_time, open, high, low, close FROM candles WHERE symbol = $1 "
            "ORDER BY open_time", symbol,
        )  # fmt: skip
        assert [row["open_time"] for row in rows] == [
            now - timedelta(days=1) + timedelta(minutes=m) for m in range(1440)
        ]
        for before, after in itertools.pairwise(rows):
            assert after["open"] == before["close"], (symbol, after["open_time"])
        assert all(row["low"] <= min(row["open"], row["close"]) for row in rows)
        assert all(row["high"] >= max(row["open"], row["close"]) for row in rows)
    assert market.next_minute * 60 == int(now.timestamp())


async def test_a_symbol_back_after_a_while_gets_the_minutes_it_missed_in_one_write(
    pool: asyncpg.Pool,
) -> None:
    """ETHUSDT stopped 16 days ago (its last 2 days stored), BTCUSDT went on: ETHUSDT gets
    the 15 days it missed within the window, more than one block of the generator, each minute
    once, joined to the market; a `now` before the stored history writes nothing of it."""
    now = datetime(2025, 6, 1, tzinfo=UTC)
    stopped = now - timedelta(days=16)
    await simulated_history(pool, symbols=["BTCUSDT", "ETHUSDT"], seed=4, days=2, now=stopped)
    await simulated_history(
        pool, symbols=["BTCUSDT"], seed=4, days=20, now=now - timedelta(hours=1)
    )
    _, in_the_past = await simulated_history(
        pool, symbols=["BTCUSDT", "ETHUSDT"], seed=4, days=1, now=now - timedelta(days=3)
    )
    _, written = await simulated_history(
        pool, symbols=["BTCUSDT", "ETHUSDT"], seed=4, days=15, now=now
    )
    rows = await pool.fetch(
        "SELECT open_time, open, close FROM candles WHERE symbol = 'ETHUSDT' AND open_time >= $1 "
        "ORDER BY open_time", now - timedelta(days=15),
    )  # fmt: skip
    assert in_the_past == 0
    assert written == (15 * 1440 - 60) + 2 * 60  # ETHUSDT's missed minutes, both last hours
    assert [row["open_time"] for row in rows] == [
        now - timedelta(days=15) + timedelta(minutes=m) for m in range(15 * 1440)
    ]
    assert all(after["open"] == before["close"] for before, after in itertools.pairwise(rows))


async def test_a_backup_restores_with_clean_while_the_store_writes(
    pool: asyncpg.Pool, market_db: str, tmp_path: Path
) -> None:
    """The backup CronJob's dump, restored as restore.sh does (`--clean --single-transaction`)
    while the market data service's connections stay open with their staging tables."""
    trade = Trade("BTCUSDT", 1, Decimal("50000.5"), Decimal("0.25"), False, datetime.now(UTC))
    assert await insert_trades(pool, [trade]) == 1  # the session now holds its staging table
    dump = tmp_path / "mastertrade.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), market_db], check=True)
    restored = subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
         "-d", market_db, str(dump)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert await pool.fetchval("SELECT count(*) FROM trades") == 1
    second = replace(trade, trade_id=2)
    assert await insert_trades(pool, [second]) == 1  # and the store goes on writing
