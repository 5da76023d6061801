"""What the alert system writes and when (pure, no servers): a fill's
fee in plain digits, an order alert dated when its order changed, naive times refused and
dead-lettered, a webhook delivery id that is the same at every attempt, the daily report's
catch-up days, and the digest's list of what a rate limit held back."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from mastertrade.alerts.adapters.channels.webhook import WebhookChannel, delivery_id
from mastertrade.alerts.adapters.digests import TITLES_CHARACTERS, held_back_titles
from mastertrade.alerts.domain.events import build_from_message, build_from_order
from mastertrade.alerts.domain.report import (
    DAY,
    DailyFigures,
    build_daily_report,
    due_report,
    missed_reports,
)
from mastertrade.core.consumer import Consumer
from mastertrade.core.messages import AlertEvent, OrderEvent
from mastertrade_model.topology import QUEUES

SECRET = "hook-secret"


def fill(**changes: Any) -> OrderEvent:
    values: dict[str, Any] = {
        "client_order_id": "mt-1", "symbol": "BTCUSDT", "side": "buy", "quantity": Decimal(3),
        "status": "filled", "environment": "live", "filled_quantity": Decimal(3),
        "average_price": Decimal("30000"), "fee": Decimal(0),
    }  # fmt: skip
    return OrderEvent(**(values | changes))


@pytest.mark.parametrize(
    ("fee", "shown"),
    [("0.00000075", "0.00000075"), ("0E-8", "0"), ("0.00100000", "0.001"), ("1E+1", "10")],
)
def test_a_fills_fee_is_written_in_plain_digits(fee: str, shown: str) -> None:
    """str(Decimal) wrote 7.5E-7 and Binance's zero commission 0E-8. The event names no fee
    asset (the exchange may charge BNB on a USDT pair), so none is guessed."""
    alert = build_from_message(fill(fee=Decimal(fee)).to_json())
    assert alert.message == f"order mt-1, fee {shown}"


def test_an_order_cancelled_after_a_part_filled_is_alerted_as_that_fill() -> None:
    """A live market buy that expired at its price ceiling with 0.007 of 0.01 filled: its alert
    reaches the alert system (its queue binds `order.cancelled`) and says what filled, at what
    price, and why the rest went; one cancelled with nothing filled is a warning saying why."""
    assert any(binding.routing_key == "order.cancelled"
               for queue in QUEUES if queue.name == "alert_system.events"
               for binding in queue.bindings)  # fmt: skip
    partly = fill(status="cancelled", quantity=Decimal("0.01"), filled_quantity=Decimal("0.007"),
                  average_price=Decimal("30214.29"), fee=Decimal("0.2115"),
                  reason="not offered at or below 30600")  # fmt: skip
    alert = build_from_order(partly)
    assert (alert.kind, alert.severity) == ("order_filled", "info")
    assert alert.title == "Partly filled: buy 0.007 of 0.01 BTCUSDT at 30214.29 (live)"
    assert alert.message == ("order mt-1, fee 0.2115; the rest cancelled: not offered at or "
                             "below 30600")  # fmt: skip
    nothing = build_from_order(partly.model_copy(update={"filled_quantity": Decimal(0)}))
    assert (nothing.kind, nothing.severity) == ("order_cancelled", "warning")
    assert nothing.title == "Order cancelled: buy 0.01 BTCUSDT"
    assert nothing.message == "order mt-1: not offered at or below 30600"


@pytest.mark.parametrize("status", ["filled", "rejected", "cancelled"])
def test_an_order_alert_is_dated_when_the_order_changed_not_when_it_was_consumed(
    status: str,
) -> None:
    """A fill consumed after a backlog: the stored alert and the webhook's body carry the time
    of the fill, not of the consumption."""
    filled_at = datetime(2026, 3, 2, 7, 30, 15, 123456, tzinfo=UTC)
    event = fill(status=status, occurred_at=filled_at, reason="no")
    assert build_from_message(event.to_json()).occurred_at == filled_at
    assert build_from_order(event).occurred_at == filled_at


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "kill_switch", "title": "Kill switch ON", "occurred_at": "2026-12-06T10:00:00"},
        fill().to_json() | {"occurred_at": "2026-12-06T10:00:00"},
    ],
)
def test_a_naive_time_on_the_queue_is_refused_saying_why(payload: dict[str, Any]) -> None:
    """A naive time would be stored as the alert system's local time (asyncpg reads it so)."""
    with pytest.raises(ValidationError, match="occurred_at\n  Input should have timezone info"):
        build_from_message(payload)


def test_every_default_time_has_a_zone() -> None:
    """Every producer (risk manager, executor, strategy service, alert system) leaves the time
    to the default: it must be an aware one, or its own messages would be refused."""
    assert AlertEvent(kind="x", title="t").occurred_at.tzinfo is not None
    assert fill().occurred_at.tzinfo is not None
    assert build_from_message({"kind": "x", "title": "t"}).occurred_at.tzinfo is not None


class Delivered:
    """A message handed to the consumer, remembering what was done with it."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.body = json.dumps(payload).encode()
        self.done: list[str] = []

    async def ack(self) -> None:
        self.done.append("ack")

    async def reject(self, requeue: bool) -> None:
        self.done.append(f"reject(requeue={requeue})")

    async def nack(self, requeue: bool) -> None:
        self.done.append(f"nack(requeue={requeue})")


async def test_a_naive_time_is_dead_lettered_as_other_malformed_messages_are() -> None:
    """The alert system's handler builds the alert first: a naive time raises, and the consumer
    rejects the message without requeue, so the broker dead-letters it."""
    built: list[AlertEvent] = []

    async def handle(payload: dict[str, Any]) -> None:
        built.append(build_from_message(payload))

    queue = next(q for q in QUEUES if q.name == "alert_system.events")
    consumer = Consumer(queue, handle)
    naive = Delivered({"kind": "x", "title": "t", "occurred_at": "2026-12-06T10:00:00"})
    aware = Delivered({"kind": "x", "title": "t", "occurred_at": "2026-12-06T10:00:00Z"})
    await consumer._handle(naive)  # type: ignore[arg-type]
    await consumer._handle(aware)  # type: ignore[arg-type]
    assert (naive.done, aware.done, consumer.rejected) == (["reject(requeue=False)"], ["ack"], 1)
    assert [alert.occurred_at for alert in built] == [datetime(2026, 12, 6, 10, tzinfo=UTC)]


async def sent(alert: AlertEvent) -> httpx.Request:
    """What the webhook channel POSTs for `alert`."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        await WebhookChannel(client, "https://hooks.example/in", SECRET).send(alert)
    [request] = requests
    return request


async def test_every_attempt_of_a_webhook_carries_the_same_signed_delivery_id() -> None:
    """A resend after a crash between sending and recording: the receiver sees the id it has.
    The delivery resumed by another replica reads the alert back from PostgreSQL, its time in
    UTC; the id is the same."""
    happened = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    alert = AlertEvent(kind="order_filled", title="Filled: buy 3 BTCUSDT at 30000 (live)",
                       dedup_key="filled:mt-1", source="order_executor",
                       occurred_at=happened)  # fmt: skip
    resumed = alert.model_copy(update={"occurred_at": happened.astimezone(UTC)})
    first, again = await sent(alert), await sent(resumed)
    delivery = first.headers["X-MasterTrade-Delivery"]
    assert len(delivery) == 32 and again.headers["X-MasterTrade-Delivery"] == delivery
    body = first.read()
    assert json.loads(body) == alert.to_json() | {"delivery_id": delivery}  # inside the signed body
    stamp = first.headers["X-MasterTrade-Timestamp"]
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert first.headers["X-MasterTrade-Signature"] == f"sha256={mac}"


def test_two_alerts_have_two_delivery_ids() -> None:
    alert = AlertEvent(kind="prometheus", title="[FIRING] DiskFull", dedup_key="am:1:firing:x",
                       source="alertmanager")  # fmt: skip
    others = [
        alert.model_copy(update={"occurred_at": alert.occurred_at + timedelta(microseconds=1)}),
        alert.model_copy(update={"dedup_key": "am:1:resolved:x", "title": "[RESOLVED] DiskFull"}),
        alert.model_copy(update={"kind": "custom"}),
        alert.model_copy(update={"source": None}),
    ]
    ids = {delivery_id(alert), *(delivery_id(other) for other in others)}
    assert len(ids) == 1 + len(others)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_each_missed_day_is_reported_oldest_first_and_at_most_so_many() -> None:
    due = utc("2026-03-10 07:30")
    assert missed_reports(None, due, 7) == ([due], 0)  # never reported: only the one due
    assert missed_reports(due, due, 7) == ([], 0)
    assert missed_reports(due - DAY, due, 7) == ([due], 0)
    assert missed_reports(due - DAY * 3, due, 7) == ([due - DAY * 2, due - DAY, due], 0)
    assert missed_reports(due - DAY * 10, due, 7) == ([due - DAY * n for n in range(6, -1, -1)], 3)
    # the report time moved from 00:00 to 07:30, or from 23:00: one report a day all the same
    assert missed_reports(utc("2026-03-08 00:00"), due, 7) == ([due - DAY, due], 0)
    assert missed_reports(utc("2026-03-08 23:00"), due, 7) == ([due - DAY, due], 0)


def test_a_report_written_days_late_says_its_state_is_of_then() -> None:
    figures = DailyFigures("paper", 0, Decimal(0), (), 0, 0, None, None, False, None, False, ())
    end = due_report(utc("2026-03-10 08:00"), time(7, 30, tzinfo=UTC)) - DAY
    late = build_daily_report(figures, end, utc("2026-03-10 08:00")).message.splitlines()
    assert late[1] == ("Written late, at 2026-03-10 08:00 UTC: the equity, the circuit breaker "
                       "and the positions are as of then")  # fmt: skip
    assert "Written late" not in build_daily_report(figures, end).message


def test_the_digest_lists_the_oldest_titles_then_how_many_more() -> None:
    titles = [f"Filled: buy 0.0{n} BTCUSDT at 30000 (live)" for n in range(1, 10)]
    assert held_back_titles(titles[:2], 2) == (
        "Held back, oldest first:\n- Filled: buy 0.01 BTCUSDT at 30000 (live)\n"
        "- Filled: buy 0.02 BTCUSDT at 30000 (live)"
    )
    assert held_back_titles(titles, 40).splitlines()[-2:] == [f"- {titles[-1]}", "and 31 more"]
    long = ["[FIRING] " + "x" * 191] * 10  # titles of 200 characters: the list stays bounded
    listed = held_back_titles(long, 10)
    assert len(listed) < TITLES_CHARACTERS + 50 and listed.endswith("more")
    assert held_back_titles(["two\nlines"], 1).endswith("- two lines")
