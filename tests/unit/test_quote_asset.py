"""The account is kept in one asset (QUOTE_ASSET): only symbols quoted in it can be booked, so
strategy_service generates strategies for those alone and the executor refuses to buy the
others (a sell may unwind what an older version bought)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mastertrade.core.messages import not_quoted_reason, quoted_in
from mastertrade.execution.adapters.paper_batch import Costs, RunningBooks, decide_order
from mastertrade.execution.domain.binance_status import base_asset
from mastertrade.execution.domain.paper import Quote
from mastertrade.strategy.generation import tradable

COSTS = Costs(fee_rate=Decimal("0.001"), slippage=Decimal(0), quote_asset="USDT")


def test_a_symbol_is_quoted_in_the_asset_it_ends_with_after_a_coin() -> None:
    assert quoted_in("BTCUSDT", "USDT") and quoted_in("ETHBTC", "BTC")
    assert not quoted_in("ETHBTC", "USDT")
    assert not quoted_in("USDT", "USDT")  # no coin before it
    assert (base_asset("BTCUSDT", "USDT"), base_asset("ETHBTC", "USDT")) == ("BTC", "")


def test_no_buy_of_a_symbol_quoted_elsewhere_and_its_refusal_names_the_setting() -> None:
    assert not_quoted_reason("BTCUSDT", "buy", "USDT") is None
    reason = not_quoted_reason("ETHBTC", "buy", "USDT")
    assert reason is not None and reason.startswith("ETHBTC is not quoted in USDT (QUOTE_ASSET)")
    assert not_quoted_reason("ETHBTC", "sell", "USDT") is None  # unwinding what was bought


def test_generation_leaves_out_the_symbols_the_account_cannot_book() -> None:
    ready = ["BTCUSDT", "ETHBTC", "ETHUSDT", "BNBUSDT"]
    assert tradable(ready, [], "USDT") == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    assert tradable(ready, [], "BTC") == ["ETHBTC"]


def paper_order(status: str, side: str = "buy", reserved: str = "0") -> dict[str, Any]:
    return {"client_order_id": "mt-x", "symbol": "ETHBTC", "side": side, "type": "limit",
            "status": status, "environment": "paper", "quantity": Decimal(1),
            "price": Decimal("0.05"), "reserved": Decimal(reserved),
            "filled_quantity": Decimal(0), "average_price": None, "fee": Decimal(0),
            "reason": None, "approved_at": datetime.now(UTC)}  # fmt: skip


def test_a_paper_buy_quoted_elsewhere_is_refused_and_one_resting_is_cancelled() -> None:
    """Filled, 1 ETH would cost 0.05 USDT: its BTC price taken for USDT. One resting from an
    older version gives back the cash it held."""
    quote = Quote(Decimal("0.0499"), Decimal("0.05"))
    new = RunningBooks(free=Decimal(100), locked=Decimal(0), held={}, marks={})
    decide_order(paper_order("new"), quote, new, COSTS)
    resting = RunningBooks(free=Decimal(100), locked=Decimal("0.05005"), held={}, marks={})
    decide_order(paper_order("submitted", reserved="0.05005"), quote, resting, COSTS)
    assert [event.status for event in new.events + resting.events] == ["rejected", "cancelled"]
    assert (resting.free, resting.locked) == (Decimal("100.05005"), Decimal(0))
    assert not new.fills and not resting.fills
