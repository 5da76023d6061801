"""Events on the alert system's queue turned into alerts: any valid order event makes a valid
alert, and a message that names no dedup key is keyed by its payload."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from mastertrade.alerts.domain.events import build_from_message
from mastertrade.core.messages import AlertEvent, OrderEvent


def test_a_fill_at_a_price_of_many_digits_makes_a_valid_alert() -> None:
    """An average price is a quotient (28 digits and more); the alert's title holds 200
    characters: before, the fill's alert failed validation and went to the dead letters."""
    fill = OrderEvent(client_order_id="mt-1", symbol="BTCUSDT", side="buy", quantity=Decimal(3),
                      status="filled", environment="paper", filled_quantity=Decimal(3),
                      average_price=Decimal("0." + "3" * 190), fee=Decimal(0))  # fmt: skip
    alert = build_from_message(fill.to_json())
    assert alert.title == "Filled: buy 3 BTCUSDT at 0.333333333333 (paper)"


def test_an_event_without_a_key_is_keyed_by_its_payload() -> None:
    event = {"kind": "kill_switch", "severity": "critical", "title": "Kill switch ON",
             "occurred_at": "2026-12-06T10:00:00+00:00"}  # fmt: skip
    later = event | {"occurred_at": "2026-12-06T10:05:00+00:00"}
    keys = [build_from_message(payload).dedup_key for payload in (event, dict(event), later)]
    assert keys[0] == keys[1] != keys[2]
    assert keys[0] is not None and keys[0].startswith("event:")
    assert build_from_message(event | {"dedup_key": "mine"}).dedup_key == "mine"


def test_an_alert_event_postgresql_could_not_store_is_refused_when_it_comes_in() -> None:
    """Taken off the queue or posted, refused with what is wrong, not stored and failing there
    (a message dead-lettered for a database error, an API answering 500)."""
    for field, bad, said in [("title", "a\x00b", "NUL character"),
                             ("message", "\ud800", "lone surrogate"),
                             ("source", "x\x00", "NUL character")]:  # fmt: skip
        with pytest.raises(ValidationError, match=said):
            AlertEvent.model_validate({"kind": "k", "title": "t", field: bad})
