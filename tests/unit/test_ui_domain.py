"""The monitoring UI's pure parts: positions at market, the latest backtest, drawdown, the
equity history and P&L, the server-sent event framing and the gateway's admin scope rule."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal

import httpx

from mastertrade.gateway.access import required_scope
from mastertrade.ui.api import STATIC_DIR, build_page
from mastertrade.ui.domain.equity import EquityHistory, parse_amount
from mastertrade.ui.domain.views import build_positions, build_strategies, drawdown
from mastertrade.ui.live import sse_event
from mastertrade.ui.upstreams import section_of


def test_positions_are_valued_exactly_at_their_mark() -> None:
    rows = build_positions(
        [{"symbol": "ETHUSDT", "quantity": "0.1", "average_price": "2000.10"},
         {"symbol": "BTCUSDT", "quantity": "0.3", "average_price": "30000"}],
        {"ETHUSDT": Decimal("2000.20")},
    )  # fmt: skip
    assert [row["symbol"] for row in rows] == ["BTCUSDT", "ETHUSDT"]
    assert rows[0]["mark"] is None and rows[0]["value"] is None  # no mark: nothing guessed
    assert rows[1]["value"] == "200.020"  # 0.1 x 2000.20, no float on the way
    assert rows[1]["unrealized_pnl"] == "0.010"


def test_amounts_from_upstreams_must_be_finite_decimals() -> None:
    assert parse_amount("1.5") == Decimal("1.5")
    for bad in ("NaN", "Infinity", "-inf", "abc", None, True, ""):
        assert parse_amount(bad) is None


def test_each_strategy_gets_its_latest_backtest() -> None:
    strategies = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    backtests = [
        {"id": 10, "strategy_id": 1, "created_at": "2026-01-02T00:00:00+00:00"},
        {"id": 11, "strategy_id": 1, "created_at": "2026-01-03T00:00:00+00:00"},
        {"id": 9, "strategy_id": 1, "created_at": "2026-01-01T00:00:00+00:00"},
    ]
    found = build_strategies(strategies, backtests)
    assert found[0]["backtest"]["id"] == 11
    assert found[1]["backtest"] is None


def test_drawdown_is_a_fraction_of_the_peak_like_the_risk_limit() -> None:
    assert drawdown(Decimal(85), Decimal(100)) == Decimal("0.15")
    assert drawdown(Decimal(120), Decimal(100)) == 0  # above the peak: no drawdown
    assert drawdown(None, Decimal(100)) is None
    assert drawdown(Decimal(1), Decimal(0)) is None


def test_equity_history_keeps_distinct_valuations_and_pnl_against_the_start() -> None:
    history = EquityHistory(size=3)
    history.add("t1", Decimal("10000"), Decimal("10000"))
    history.add("t1", Decimal("10000"), Decimal("10000"))  # the same valuation polled again
    for time, equity in (("t2", "10100.5"), ("t3", "9900"), ("t4", "9950.25")):
        history.add(time, Decimal(equity), Decimal("10000"))
    found = history.as_json()
    assert found["baseline"] == "10000"
    assert [(p["time"], p["pnl"]) for p in found["points"]] == [
        ("t2", "100.5"), ("t3", "-100"), ("t4", "-49.75"),
    ]  # fmt: skip
    live = EquityHistory(size=5)  # no paper balance: P&L from the first valuation seen
    live.add("t1", Decimal("500"), None)
    live.add("t2", Decimal("510"), None)
    assert [p["pnl"] for p in live.as_json()["points"]] == ["0", "10"]


def test_a_server_sent_event_is_one_data_line() -> None:
    event = sse_event("snapshot", {"text": "two\nlines", "amount": "1.10"}, 7).decode()
    lines = event.split("\n")
    assert lines[:3] == ["id: 7", "event: snapshot", lines[2]]
    assert event.endswith("\n\n") and event.count("\n") == 4
    assert json.loads(lines[2].removeprefix("data: ")) == {"text": "two\nlines", "amount": "1.10"}


def test_an_error_answer_becomes_a_sentence_naming_the_upstream() -> None:
    refused = section_of("api_gateway", httpx.Response(403, json={"detail": "needs admin"}))
    assert (refused.ok, refused.status) == (False, 403)
    assert refused.error == "api_gateway answered 403: needs admin"
    garbled = section_of("data_access_api", httpx.Response(200, text="<html>"))
    assert garbled.error == "data_access_api answered something that is not JSON"
    assert section_of("x", httpx.Response(200, json=[1])).data == [1]


def test_admin_routes_need_the_admin_scope_whatever_the_method() -> None:
    assert required_scope("POST", False, "api/v1/admin/circuit-breaker/reset") == "admin"
    assert required_scope("GET", False, "api//v1/./ADMIN/x") == "admin"
    assert required_scope("GET", False, "api/v1/administrators") is None
    assert required_scope("POST", False, "api/v1/check") == "trade"


def test_the_page_inlines_its_stylesheet_allowed_by_its_hash_only() -> None:
    html, headers = build_page()
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None and "app.css" not in html  # one round trip to the first paint
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    policy = headers["Content-Security-Policy"]
    assert f"style-src 'self' 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy and "default-src 'self'" in policy
    # every script and module the page names is served from the package, none from elsewhere
    for name in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert (STATIC_DIR / name).is_file(), name
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', html))
