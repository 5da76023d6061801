"""Writing simulated history fast: integer units in PostgreSQL's binary COPY format.

A `Block` of the simulated market is already integers (ticks, lots, epoch minutes), so instead
of building a Decimal per value in Python, numpy lays the rows out in PostgreSQL's binary COPY
format in one go; the INSERT that moves them from the temporary table into `candles` scales
the integers into exact NUMERICs (units * 0.01 for a 2-place tick) and upserts, so the
result is the same as writing the Decimals the domain would hand out, idempotently.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from mastertrade.market_data.domain.simulator import INSTRUMENTS, TABLE_DTYPE, units
from mastertrade.market_data.store import CANDLE_COLUMNS, CANDLE_UPSERT, AnyConnection

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = b"\xff\xff"
TEMPORARY = "md_in_simulated"
_TYPES = ", ".join(
    f"{name} {'smallint' if name == 'symbol' else 'bigint'}" for name in TABLE_DTYPE.names or ()
)
CREATE_TEMPORARY = f"CREATE TEMP TABLE IF NOT EXISTS {TEMPORARY} ({_TYPES}) ON COMMIT DELETE ROWS"


# Multiplying by a NUMERIC constant such as 0.01 gives an exact result whose scale is the
# constant's (the tick's or lot's places), with no rounding and no power() per value
SELECT_SCALED = f"""
SELECT s.symbol, '1m', to_timestamp(i.minute * 60),
    i.open * s.tick, i.high * s.tick, i.low * s.tick, i.close * s.tick, i.volume * s.lot,
    to_timestamp(i.minute * 60) + interval '59.999 seconds',
    (i.volume::numeric * i.vwap) * s.quote, i.trade_count, i.taker_volume * s.lot,
    (i.taker_volume::numeric * i.vwap) * s.quote
FROM {TEMPORARY} i
JOIN unnest($1::smallint[], $2::text[], $3::numeric[], $4::numeric[], $5::numeric[])
    AS s(idx, symbol, tick, lot, quote) ON s.idx = i.symbol
"""
INSERT_SCALED = CANDLE_UPSERT.replace(
    f"SELECT {', '.join(CANDLE_COLUMNS)} FROM {{source}}", SELECT_SCALED
)


def encode_copy_binary(table: npt.NDArray[np.void]) -> bytes:
    """Rows of TABLE_DTYPE as a PostgreSQL binary COPY stream (big-endian, length-prefixed)."""
    names = TABLE_DTYPE.names or ()
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name in names:
        width = TABLE_DTYPE.fields[name][0].itemsize if TABLE_DTYPE.fields else 8
        fields += [(f"{name}_length", ">i4"), (name, f">i{width}")]
    wire = np.empty(len(table), dtype=np.dtype(fields))
    wire["count"] = len(names)
    for name in names:
        wire[f"{name}_length"] = TABLE_DTYPE.fields[name][0].itemsize if TABLE_DTYPE.fields else 8
        wire[name] = table[name]
    return COPY_HEADER + wire.tobytes() + COPY_TRAILER


def _instrument_arrays() -> tuple[
    list[int], list[str], list[Decimal], list[Decimal], list[Decimal]
]:
    return (
        list(range(len(INSTRUMENTS))),
        [spec.symbol for spec in INSTRUMENTS],
        [units(1, spec.tick_places) for spec in INSTRUMENTS],
        [units(1, spec.lot_places) for spec in INSTRUMENTS],
        [units(1, spec.quote_places) for spec in INSTRUMENTS],
    )


async def write_simulated(connection: AnyConnection, table: npt.NDArray[np.void]) -> int:
    """Upsert simulated candles (TABLE_DTYPE rows) in one transaction; rows new or changed."""
    if len(table) == 0:
        return 0
    async with connection.transaction():
        await connection.execute(CREATE_TEMPORARY)
        await connection.copy_to_table(
            TEMPORARY, source=io.BytesIO(encode_copy_binary(table)), format="binary"
        )
        status = await connection.execute(INSERT_SCALED, *_instrument_arrays())
        # emptied at the caller's commit too, but a caller writing several blocks in one
        # transaction would upsert every earlier block's rows again with each later one
        await connection.execute(f"TRUNCATE {TEMPORARY}")
    return int(status.rsplit(" ", 1)[-1])


def symbols_of(table: npt.NDArray[np.void]) -> Sequence[str]:
    """The symbols present in a table of simulated rows."""
    return [INSTRUMENTS[int(index)].symbol for index in np.unique(table["symbol"])]
