"""The account is kept in one asset (QUOTE_ASSET): only symbols quoted in it can be booked, so
strategy_service generates strategies for those alone and the executor refuses the others."""

from __future__ import annotations

from mastertrade.core.messages import not_quoted_reason, quoted_in
from mastertrade.execution.domain.binance_status import base_asset
from mastertrade.strategy.generation import tradable


def test_a_symbol_is_quoted_in_the_asset_it_ends_with_after_a_coin() -> None:
    assert quoted_in("BTCUSDT", "USDT") and quoted_in("ETHBTC", "BTC")
    assert not quoted_in("ETHBTC", "USDT")
    assert not quoted_in("USDT", "USDT")  # no coin before it
    assert (base_asset("BTCUSDT", "USDT"), base_asset("ETHBTC", "USDT")) == ("BTC", "")


def test_the_refusal_names_the_symbol_the_asset_and_the_setting() -> None:
    assert not_quoted_reason("BTCUSDT", "USDT") is None
    reason = not_quoted_reason("ETHBTC", "USDT")
    assert reason is not None and reason.startswith("ETHBTC is not quoted in USDT (QUOTE_ASSET)")


def test_generation_leaves_out_the_symbols_the_account_cannot_book() -> None:
    ready = ["BTCUSDT", "ETHBTC", "ETHUSDT", "BNBUSDT"]
    assert tradable(ready, [], "USDT") == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    assert tradable(ready, [], "BTC") == ["ETHBTC"]
