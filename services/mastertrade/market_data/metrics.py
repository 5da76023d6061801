"""Prometheus metrics of market_data_service, in the service's own registry.

Next to the platform's metrics (`mastertrade.core.metrics`): events taken per source and kind,
events rejected by reason (malformed, implausible, duplicate, out_of_order, buffer_overflow),
ids that started their symbol's ordering again, symbols Binance refused, rows written per table,
write errors, which collectors are on and their polls by outcome, whether each live source is
connected, reconnects, candles backfilled, and Binance's used request weight.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class MarketMetrics:
    """The market-data metric families, labelled with the service name."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.registry = registry
        self.events = Counter(
            "mastertrade_market_data_events_total",
            "Market events accepted, by source and kind (candle, trade, ticker)",
            ["service", "source", "kind"],
            registry=registry,
        )
        self.rejected = Counter(
            "mastertrade_market_data_rejected_total",
            "Market messages dropped, by source and reason (malformed, duplicate, out_of_order)",
            ["service", "source", "reason"],
            registry=registry,
        )
        self.sequence_resets = Counter(
            "mastertrade_market_data_sequence_resets_total",
            "Trades or tickers taken although far below the newest id seen, which was absurd: "
            "their symbol's ordering starts again from them",
            ["service", "source", "kind"],
            registry=registry,
        )
        self.refused_symbols = Counter(
            "mastertrade_market_data_refused_symbols_total",
            "Backfills of a symbol Binance refused (delisted, renamed or mistyped: fix "
            "MARKET_DATA_SYMBOLS), by symbol",
            ["service", "source", "symbol"],
            registry=registry,
        )
        self.written = Counter(
            "mastertrade_market_data_rows_written_total",
            "Rows inserted or changed in PostgreSQL, by table",
            ["service", "table"],
            registry=registry,
        )
        self.write_errors = Counter(
            "mastertrade_market_data_write_errors_total",
            "Batches that could not be written (kept and retried)",
            ["service"],
            registry=registry,
        )
        self.collector = Gauge(
            "mastertrade_market_data_collector_enabled",
            "1 when a collector or source is on, 0 when it is off (no key, or not chosen)",
            ["service", "collector"],
            registry=registry,
        )
        self.connected = Gauge(
            "mastertrade_market_data_source_connected",
            "1 while a live source is connected and delivering",
            ["service", "source"],
            registry=registry,
        )
        self.reconnects = Counter(
            "mastertrade_market_data_reconnects_total",
            "Live-stream reconnections, by reason (disconnect, rotation, error)",
            ["service", "source", "reason"],
            registry=registry,
        )
        self.backfilled = Counter(
            "mastertrade_market_data_backfilled_candles_total",
            "Candles written by backfills, by source",
            ["service", "source"],
            registry=registry,
        )
        self.collector_polls = Counter(
            "mastertrade_market_data_collector_polls_total",
            "Polls of the sentiment and on-chain collectors, by outcome (ok, rate_limited, "
            "unauthorized, malformed, error)",
            ["service", "collector", "outcome"],
            registry=registry,
        )
        # `time() - this` is how stale the feed is: the "no market data" alert reads it
        self.last_event = Gauge(
            "mastertrade_market_data_last_event_timestamp_seconds",
            "Unix time of the last market event accepted, by source and kind",
            ["service", "source", "kind"],
            registry=registry,
        )
        self.used_weight = Gauge(
            "mastertrade_binance_used_weight_1m",
            "Binance's X-MBX-USED-WEIGHT-1M from the last REST answer",
            ["service"],
            registry=registry,
        )

    def accept(self, source: str, kind: str) -> None:
        self.events.labels(self.service, source, kind).inc()
        self.last_event.labels(self.service, source, kind).set_to_current_time()

    def reject(self, source: str, reason: str) -> None:
        self.rejected.labels(self.service, source, reason).inc()

    def sequence_reset(self, source: str, kind: str) -> None:
        self.sequence_resets.labels(self.service, source, kind).inc()

    def refused_symbol(self, source: str, symbol: str) -> None:
        self.refused_symbols.labels(self.service, source, symbol).inc()

    def wrote(self, table: str, rows: int) -> None:
        self.written.labels(self.service, table).inc(rows)

    def set_collector(self, collector: str, enabled: bool) -> None:
        self.collector.labels(self.service, collector).set(1 if enabled else 0)

    def collector_poll(self, collector: str, outcome: str) -> None:
        self.collector_polls.labels(self.service, collector, outcome).inc()

    def set_connected(self, source: str, connected: bool) -> None:
        self.connected.labels(self.service, source).set(1 if connected else 0)

    def reconnect(self, source: str, reason: str) -> None:
        self.reconnects.labels(self.service, source, reason).inc()

    def backfill(self, source: str, candles: int) -> None:
        self.backfilled.labels(self.service, source).inc(candles)
