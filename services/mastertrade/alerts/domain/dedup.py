"""Dedup keys: which name one event, and which name a condition that repeats.

A key that names one event is an idempotency key: a message carrying it again, however late
(the broker redelivering what a replica that died never acknowledged, a node lost and its pod
evicted minutes later; an outbox publishing again after an outage), is that event again, never
a new alert. Its earlier alerts are looked up with no time limit, as far back as the history
is kept (ALERT_HISTORY_DAYS). Such keys are made by this service's consumers (an order's status
and client order id; the digest of a message that names no key) and by producers that key an
alert by the event itself (a breaker trip by the risk state's version it was decided on, a
strategy change by its run or activation).

Any other key names a condition that goes on and is posted again while it lasts (an
Alertmanager alert and its start, a risk rule's rejections of a symbol, a position drift at
each poll): a repeat within ALERT_DEDUP_SECONDS of the one before is suppressed, and one after a
longer quiet spell is news again. A key not known here gets the window: a double alert is the
lesser harm than an alert silenced for months.
"""

from __future__ import annotations

from typing import get_args

from mastertrade.core.messages import OrderEvent

ORDER_STATUSES: tuple[str, ...] = get_args(OrderEvent.model_fields["status"].annotation)
"""Every status an order event carries (its key is `<status>:<client order id>`)."""
PAYLOAD_PREFIX = "event:"
"""The key of a message that names none: `event:<sha256 of its canonical JSON>`."""
EVENT_PREFIXES = (
    *(f"{status}:" for status in ORDER_STATUSES),  # an order reaches each status once
    PAYLOAD_PREFIX,  # the whole message, its `occurred_at` with it
    "circuit-breaker-tripped:",  # risk_manager's `breaker_alert`: one per trip
    "strategy-change:",  # strategy_service: one per generation run, or per activation by hand
)
"""The beginnings of the keys that name one event."""


def order_key(status: str, client_order_id: str) -> str:
    """The dedup key of an order's event: the order reaching one status."""
    return f"{status}:{client_order_id}"


def names_one_event(key: str) -> bool:
    """Whether `key` identifies one event (an idempotency key), not a condition that repeats."""
    return key.startswith(EVENT_PREFIXES)


def dedup_lookback(key: str, window_seconds: float) -> float | None:
    """How many seconds back an earlier alert with `key` is looked for: None, as far as the
    history goes, for a key naming one event; the dedup window for any other."""
    return None if names_one_event(key) else window_seconds
