"""The optional `strength` of a signal (strategy_service sends it): a decimal from 0 to 1;
senders that leave it out are still understood, and anything else is refused by name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from mastertrade.core.messages import Signal

BASE = {"signal_id": "st1-BTCUSDT-1-buy", "symbol": "BTCUSDT", "side": "buy", "quantity": "0.1",
        "price": "30000"}  # fmt: skip


def test_strength_is_optional_and_travels_as_a_decimal_string() -> None:
    assert Signal.model_validate(BASE).strength is None
    signal = Signal.model_validate({**BASE, "strength": "0.75"})
    assert signal.strength == Decimal("0.75")
    assert signal.to_json()["strength"] == "0.75"
    assert Signal.model_validate(signal.to_json()) == signal


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "NaN", "Infinity"])
def test_strength_outside_zero_to_one_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="strength"):
        Signal.model_validate({**BASE, "strength": bad})
