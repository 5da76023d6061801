"""Binance's order answers and execution reports, read exactly or refused whole.

The documented examples (Binance's spot API docs: POST /api/v3/order with
newOrderRespType=FULL, the user-data stream's executionReport) are read into exact decimals;
every number that is not finite, is negative, out of the platform's bounds or not a number, and
every missing id, is refused with an error naming the field, so nothing of it is booked."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from mastertrade.execution.domain.binance_status import (
    BinanceAnswerError,
    parse_execution_report,
    parse_fill,
    parse_order,
)

FULL_ANSWER: dict[str, Any] = {
    "symbol": "BTCUSDT", "orderId": 28, "orderListId": -1,
    "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP", "transactTime": 1507725176595,
    "price": "0.00000000", "origQty": "10.00000000", "executedQty": "10.00000000",
    "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "39983.00000000",
    "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": "SELL",
    "workingTime": 1507725176595, "selfTradePreventionMode": "NONE",
    "fills": [
        {"price": "4000.00000000", "qty": "1.00000000", "commission": "4.00000000",
         "commissionAsset": "USDT", "tradeId": 56},
        {"price": "3999.00000000", "qty": "5.00000000", "commission": "19.99500000",
         "commissionAsset": "USDT", "tradeId": 57},
        {"price": "3998.00000000", "qty": "2.00000000", "commission": "7.99600000",
         "commissionAsset": "USDT", "tradeId": 58},
        {"price": "3997.00000000", "qty": "1.00000000", "commission": "3.99700000",
         "commissionAsset": "USDT", "tradeId": 59},
        {"price": "3995.00000000", "qty": "1.00000000", "commission": "3.99500000",
         "commissionAsset": "USDT", "tradeId": 60},
    ],
}  # fmt: skip
"""Binance's documented example, its cummulativeQuoteQty made the sum of its fills."""

TRADE_REPORT: dict[str, Any] = {
    "e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410",
    "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": "TRADE",
    "X": "PARTIALLY_FILLED", "r": "NONE", "i": 4293153, "l": "0.25000000", "z": "0.25000000",
    "L": "0.10264410", "n": "0.00025000", "N": "ETH", "T": 1499405658657, "t": 7001, "v": 3,
    "I": 8641984, "w": False, "m": False, "M": True, "O": 1499405658657, "Z": "0.02566102",
    "Y": "0.02566102", "Q": "0.00000000", "W": 1499405658657, "V": "NONE",
}  # fmt: skip
"""The documented executionReport, as the trade of a quarter of the order."""


def test_the_documented_full_answer_is_read_exactly() -> None:
    state = parse_order(FULL_ANSWER)
    trades = [parse_fill(item) for item in FULL_ANSWER["fills"]]
    assert (state.exchange_order_id, state.status) == ("28", "filled")
    assert state.filled_quantity == Decimal(10) and state.average_price == Decimal("3998.3")
    assert [t.trade_id for t in trades] == ["56", "57", "58", "59", "60"]
    # the fills add up to the order, to the last unit: nothing went through a float
    assert sum(t.quantity for t in trades) == state.filled_quantity
    assert sum(t.price * t.quantity for t in trades) == Decimal(FULL_ANSWER["cummulativeQuoteQty"])
    assert sum(t.fee for t in trades) == Decimal("39.983")


def test_the_documented_execution_report_is_read_exactly() -> None:
    client_order_id, state, trade = parse_execution_report(TRADE_REPORT)
    assert client_order_id == "mUvoqJxFIILMdfAW5iGSOW" and state.status == "partially_filled"
    assert state.average_price == Decimal("0.10264408")  # Z / z
    assert trade is not None and trade.trade_id == "7001"
    assert (trade.price, trade.quantity, trade.fee, trade.fee_asset) == (
        Decimal("0.10264410"),
        Decimal("0.25"),
        Decimal("0.00025"),
        "ETH",
    )


def test_a_report_that_is_no_trade_carries_none() -> None:
    report = TRADE_REPORT | {"x": "NEW", "X": "NEW", "l": "0", "z": "0", "Z": "0", "L": "0",
                             "n": "0", "N": None, "t": -1}  # fmt: skip
    _, state, trade = parse_execution_report(report)
    assert trade is None and state.filled_quantity == 0 and state.average_price is None


UNUSABLE: list[Any] = ["NaN", "Infinity", "-Infinity", "sNaN", "-0.5", "1e16", "1e-40", "ten",
                       "", None, True, [], {}]  # fmt: skip


@pytest.mark.parametrize("value", UNUSABLE)
@pytest.mark.parametrize("field", ["executedQty", "cummulativeQuoteQty"])
def test_an_order_answer_with_an_unusable_amount_is_refused(field: str, value: Any) -> None:
    with pytest.raises(BinanceAnswerError, match=field):
        parse_order(FULL_ANSWER | {field: value})


@pytest.mark.parametrize("value", [*UNUSABLE, "0", "0.00000000"])
@pytest.mark.parametrize("field", ["price", "qty"])
def test_a_fill_with_an_unusable_price_or_quantity_is_refused(field: str, value: Any) -> None:
    with pytest.raises(BinanceAnswerError, match=field):
        parse_fill(FULL_ANSWER["fills"][0] | {field: value})


@pytest.mark.parametrize("value", UNUSABLE)
def test_a_fill_with_an_unusable_commission_is_refused(value: Any) -> None:
    with pytest.raises(BinanceAnswerError, match="commission"):
        parse_fill(FULL_ANSWER["fills"][0] | {"commission": value})


@pytest.mark.parametrize("value", UNUSABLE)
@pytest.mark.parametrize("field", ["z", "Z", "L", "l", "n"])
def test_a_trade_report_with_an_unusable_amount_is_refused(field: str, value: Any) -> None:
    with pytest.raises(BinanceAnswerError, match=repr(field)):
        parse_execution_report(TRADE_REPORT | {field: value})


@pytest.mark.parametrize("value", [None, "", "abc", "-5", "1.5", True])
def test_a_trade_or_order_without_its_id_is_refused(value: Any) -> None:
    """Trades are booked once by their id: one without an id would be taken for another."""
    fill = {k: v for k, v in FULL_ANSWER["fills"][0].items() if k != "tradeId"}
    with pytest.raises(BinanceAnswerError, match="tradeId"):
        parse_fill(fill | ({"tradeId": value} if value is not None else {}))
    with pytest.raises(BinanceAnswerError, match="'t'"):
        parse_execution_report(TRADE_REPORT | {"t": value})
    with pytest.raises(BinanceAnswerError, match="orderId"):
        parse_order(FULL_ANSWER | {"orderId": value})


def test_a_cancel_report_is_read_as_the_order_it_cancelled() -> None:
    """Cancelled by origClientOrderId, the report's `c` is the cancel's own id; `C` the order's."""
    report = TRADE_REPORT | {"x": "CANCELED", "X": "CANCELED", "c": "cancel-77",
                             "C": "mUvoqJxFIILMdfAW5iGSOW", "t": -1}  # fmt: skip
    client_order_id, state, trade = parse_execution_report(report)
    assert (client_order_id, state.status, trade) == ("mUvoqJxFIILMdfAW5iGSOW", "cancelled", None)


@pytest.mark.parametrize(("value", "says"), [
    ("abc", "'abc', not a number"), ("NaN", "'NaN', not a finite number"),
    ("1e16", "'1e16', outside the amounts MasterTrade books"), ("-1", "'-1', not zero or more"),
])  # fmt: skip
def test_a_refusal_says_which_field_and_what_binance_sent(value: str, says: str) -> None:
    with pytest.raises(BinanceAnswerError) as refused:
        parse_order(FULL_ANSWER | {"executedQty": value})
    assert str(refused.value).startswith(f"'executedQty' of Binance's answer is {says}")


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "12\u00b2"])
def test_an_id_of_other_digits_than_ascii_is_refused(value: str) -> None:
    with pytest.raises(BinanceAnswerError, match="not an id"):
        parse_order(FULL_ANSWER | {"orderId": value})


def test_a_report_without_a_client_order_id_is_refused() -> None:
    with pytest.raises(BinanceAnswerError, match="client order id"):
        parse_execution_report(TRADE_REPORT | {"c": "", "C": ""})


def test_a_fill_without_its_quote_or_an_absurd_average_is_refused() -> None:
    with pytest.raises(BinanceAnswerError, match="filled for a quote of 0"):
        parse_order(FULL_ANSWER | {"cummulativeQuoteQty": "0"})
    # each bound respected, but their quotient is a price of 1e30
    with pytest.raises(BinanceAnswerError, match="average price"):
        parse_order(FULL_ANSWER | {"executedQty": "1e-15", "cummulativeQuoteQty": "1e15"})


@pytest.mark.parametrize("answer", [[], "FILLED", 42, None])
def test_an_answer_that_is_not_an_object_is_refused(answer: Any) -> None:
    with pytest.raises(BinanceAnswerError, match="not a JSON object"):
        parse_order(answer)


def test_the_answer_read_is_left_as_binance_sent_it() -> None:
    before = copy.deepcopy(FULL_ANSWER)
    parse_order(FULL_ANSWER)
    assert before == FULL_ANSWER
