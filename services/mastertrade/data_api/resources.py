"""The tables the data access API reads, each described once: columns, keyset order, filters.

The keyset of a resource is columns that make a row unique and never change once it is stored:
its time column followed by an id, or for positions, which change in place, their primary key
(a page keyed on `updated_at` would skip a position updated while a client pages). Every keyset
has an index in that order (0001_base_schema.sql, 0013_data_access_arbitrage_gateway.sql,
0015_sentiment_onchain.sql), so a page is an index range scan whatever its depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["text", "numeric", "time", "int", "json"]


@dataclass(frozen=True)
class Column:
    """One column as served: numerics as decimal strings, times as ISO 8601, JSON as JSON."""

    name: str
    kind: ColumnKind = "text"

    def select(self) -> str:
        if self.kind in ("numeric", "json"):
            return f"{self.name}::text AS {self.name}"
        return self.name


@dataclass(frozen=True)
class Resource:
    """A table served page by page in the order of `key`; `start` and `end` select on `time`
    (when not given: the key's first column, a time)."""

    name: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    filters: tuple[str, ...] = ()
    time: str = ""

    def kind_of(self, column: str) -> ColumnKind:
        return next(c.kind for c in self.columns if c.name == column)

    @property
    def time_column(self) -> str:
        return self.time or self.key[0]


def _cols(spec: str) -> tuple[Column, ...]:
    """`name:kind name ...` -> columns (kind defaults to text)."""
    found = []
    for item in spec.split():
        name, _, kind = item.partition(":")
        found.append(Column(name, kind or "text"))  # type: ignore[arg-type]
    return tuple(found)


CANDLES = Resource(
    "candles", "candles",
    _cols("symbol interval open_time:time open:numeric high:numeric low:numeric close:numeric "
          "volume:numeric"),
    key=("open_time",), filters=("symbol", "interval"),
)  # fmt: skip
TRADES = Resource(
    "trades", "trades",
    _cols("id:int symbol trade_id price:numeric quantity:numeric side traded_at:time"),
    key=("traded_at", "id"), filters=("symbol",),
)  # fmt: skip
ORDERS = Resource(
    "orders", "orders",
    _cols("client_order_id exchange_order_id signal_id:int symbol side type quantity:numeric "
          "price:numeric status environment created_at:time updated_at:time"),
    key=("created_at", "client_order_id"), filters=("symbol", "status", "environment"),
)  # fmt: skip
FILLS = Resource(
    "fills", "fills",
    _cols("id:int client_order_id fill_id price:numeric quantity:numeric fee:numeric fee_asset "
          "filled_at:time"),
    key=("filled_at", "id"), filters=("client_order_id",),
)  # fmt: skip
POSITIONS = Resource(
    "positions", "positions",
    _cols("environment symbol quantity:numeric average_price:numeric updated_at:time"),
    key=("environment", "symbol"), filters=("environment", "symbol"), time="updated_at",
)  # fmt: skip
STRATEGIES = Resource(
    "strategies", "strategies",
    _cols("id:int name status parameters:json created_at:time"),
    key=("created_at", "id"), filters=("status",),
)  # fmt: skip
BACKTESTS = Resource(
    "backtests", "backtests",
    _cols("id:int strategy_id:int status period_from:time period_to:time metrics:json "
          "created_at:time finished_at:time"),
    key=("created_at", "id"), filters=("strategy_id", "status"),
)  # fmt: skip
ALERTS = Resource(
    "alerts", "alerts",
    _cols("id:int severity title message channel status created_at:time"),
    key=("created_at", "id"), filters=("severity", "status"),
)  # fmt: skip
ARBITRAGE = Resource(
    "arbitrage_opportunities", "arbitrage_opportunities",
    _cols("id:int kind venue route start_asset start_amount:numeric expected_profit:numeric "
          "profit_bps:numeric legs:json detected_at:time"),
    key=("detected_at", "id"), filters=("kind",),
)  # fmt: skip

EXTERNAL_METRICS = Resource(
    "external_metrics", "external_metrics",
    _cols("source kind subject metric observed_at:time value:numeric collected_at:time"),
    key=("observed_at", "source", "subject", "metric"),
    filters=("kind", "source", "subject", "metric"),
)  # fmt: skip

RESOURCES: tuple[Resource, ...] = (
    CANDLES, TRADES, ORDERS, FILLS, POSITIONS, STRATEGIES, BACKTESTS, ALERTS, ARBITRAGE,
    EXTERNAL_METRICS,
)  # fmt: skip
