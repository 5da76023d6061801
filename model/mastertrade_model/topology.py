"""The RabbitMQ topology of MasterTrade, defined once.

Services declare what they use from here at start-up; `definitions_document()` turns the same
definition into RabbitMQ's definitions.json (vhost-agnostic), which the chart ships and
`mastertrade migrate` imports. Every queue dead-letters into one exchange, so a message a service
cannot handle is kept for a person to look at instead of being lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEAD_LETTER_EXCHANGE = "mastertrade.dlx"
DEAD_LETTER_QUEUE = "mastertrade.dead_letters"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str = "topic"


@dataclass(frozen=True)
class Binding:
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Queue:
    name: str
    bindings: tuple[Binding, ...]
    dead_letter: bool = True
    arguments: dict[str, Any] = field(default_factory=dict)

    def declared_arguments(self) -> dict[str, Any]:
        if not self.dead_letter:
            return dict(self.arguments)
        return {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE, **self.arguments}


MARKET_DATA = Exchange("mastertrade.market_data")
SIGNALS = Exchange("mastertrade.signals")
ORDERS = Exchange("mastertrade.orders")
ALERTS = Exchange("mastertrade.alerts")
DEAD_LETTERS = Exchange(DEAD_LETTER_EXCHANGE)

EXCHANGES: tuple[Exchange, ...] = (MARKET_DATA, SIGNALS, ORDERS, ALERTS, DEAD_LETTERS)

# arbitrage_service publishes each opportunity found on SIGNALS as `arbitrage.<kind>`
# (arbitrage.triangular, arbitrage.cross_venue); no queue binds it yet, signal.# does not match.
ARBITRAGE_ROUTING_PREFIX = "arbitrage"
# market_data_service publishes sentiment and on-chain observations on MARKET_DATA as
# `sentiment.<source>.<subject>` and `onchain.<source>.<subject>`; no queue binds them yet.

QUEUES: tuple[Queue, ...] = (
    Queue("strategy_service.candles", (Binding(MARKET_DATA.name, "candle.#"),)),
    Queue("arbitrage_service.tickers", (Binding(MARKET_DATA.name, "ticker.#"),)),
    Queue("risk_manager.order_requests", (Binding(SIGNALS.name, "signal.#"),)),
    Queue("order_executor.approved_orders", (Binding(ORDERS.name, "order.approved"),)),
    Queue(
        "alert_system.events",
        (
            Binding(ALERTS.name, "#"),
            Binding(ORDERS.name, "order.filled"),
            Binding(ORDERS.name, "order.rejected"),
            Binding(ORDERS.name, "order.cancelled"),
        ),
    ),
    Queue(DEAD_LETTER_QUEUE, (Binding(DEAD_LETTER_EXCHANGE, "#"),), dead_letter=False),
)


def definitions_document() -> dict[str, Any]:
    """The topology as RabbitMQ's per-vhost definitions (import with POST /api/definitions/vh)."""
    return {
        "exchanges": [
            {
                "name": exchange.name,
                "type": exchange.type,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for exchange in EXCHANGES
        ],
        "queues": [
            {
                "name": queue.name,
                "durable": True,
                "auto_delete": False,
                "arguments": queue.declared_arguments(),
            }
            for queue in QUEUES
        ],
        "bindings": [
            {
                "source": binding.exchange,
                "destination": queue.name,
                "destination_type": "queue",
                "routing_key": binding.routing_key,
                "arguments": {},
            }
            for queue in QUEUES
            for binding in queue.bindings
        ],
    }
