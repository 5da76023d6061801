"""The live books against Binance's snapshot: only holding more than Binance is a drift, and
only once two snapshots in a row agree on it."""

from __future__ import annotations

from decimal import Decimal

from mastertrade.execution.domain.drift import DriftWatch, drift_message, shortfalls

D = Decimal


def test_only_books_holding_more_than_binance_fall_short() -> None:
    books = {"BTCUSDT": D("0.5"), "ETHUSDT": D(2), "SOLUSDT": D(0), "ETHBTC": D(9)}
    holdings = {"BTC": D("0.3"), "ETH": D(5), "USDT": D(100)}
    # ETH held beyond the books is someone's own coin; SOL is sold out; ETHBTC is not in USDT
    assert shortfalls(books, holdings, "USDT") == {"BTCUSDT": (D("0.5"), D("0.3"))}
    assert shortfalls({"BNBUSDT": D(1)}, {}, "USDT") == {"BNBUSDT": (D(1), D(0))}


def test_a_shortfall_counts_once_two_snapshots_in_a_row_show_the_same_figures() -> None:
    watch = DriftWatch()
    short = {"BTCUSDT": (D("0.5"), D("0.3"))}
    assert watch.observe(short) == {}  # a fill between the snapshot and its booking, maybe
    assert watch.observe(short) == short
    assert watch.observe({"BTCUSDT": (D("0.5"), D("0.4"))}) == {}  # the figures moved
    assert watch.observe({}) == {}
    assert watch.observe(short) == {}  # the run starts again


def test_the_alert_says_what_each_side_holds_and_where_to_look() -> None:
    title, message = drift_message("BTCUSDT", (D("0.50000000"), D("0.3")), "USDT")
    assert title == "Live books hold more BTC than Binance (BTCUSDT)"
    assert message.startswith("The books hold 0.5 BTC from the fills they booked; Binance's "
                              "account holds 0.3.")  # fmt: skip
    assert "withdrawal" in message and "not changed automatically" in message
