"""The daily report's schedule and text (pure): when it is due, exact amounts, the drawdown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from mastertrade.alerts.domain.report import (
    DailyFigures,
    Holding,
    build_daily_report,
    drawdown_pct,
    due_report,
    next_report,
    show,
)

MIDNIGHT = time(0, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_due_report_is_the_last_scheduled_instant_not_after_now() -> None:
    at = time(7, 30, tzinfo=UTC)
    assert due_report(utc("2026-03-02 07:30"), at) == utc("2026-03-02 07:30")
    assert due_report(utc("2026-03-02 07:29:59"), at) == utc("2026-03-01 07:30")
    assert next_report(utc("2026-03-02 07:30"), at) == utc("2026-03-03 07:30")
    assert due_report(utc("2026-03-01 00:00:01"), MIDNIGHT) == utc("2026-03-01 00:00")


@given(st.datetimes(timezones=st.just(UTC)), st.times())
def test_now_is_always_between_the_due_and_the_next_report(now: datetime, at: time) -> None:
    at = at.replace(tzinfo=UTC)
    due = due_report(now, at)
    assert due <= now < next_report(now, at) and due.timetz() == at


def test_amounts_are_written_exactly_without_exponents() -> None:
    assert [show(Decimal(t)) for t in ["1.50000", "1E+2", "0.000", "-0", "0.00000001"]] == [
        "1.5", "100", "0", "0", "0.00000001",
    ]  # fmt: skip


def test_the_drawdown_is_from_the_peak_and_never_negative() -> None:
    assert drawdown_pct(Decimal("9000"), Decimal("10000")) == Decimal("10.00")
    assert drawdown_pct(Decimal("9999.95"), Decimal("10000")) == Decimal("0.00")  # 0.0005 %
    assert drawdown_pct(Decimal("12000"), Decimal("10000")) == Decimal("0.00")


QUIET = DailyFigures(
    environment="live", fills=0, traded_value=Decimal(0), fees=(), orders_rejected=0,
    signals_rejected=0, equity=None, equity_peak=None, breaker_open=False,
    breaker_reason=None, kill_switch=False, positions=(),
)  # fmt: skip


def test_a_report_without_equity_or_peak_says_so_and_stays_within_4000_characters() -> None:
    many = tuple(Holding(f"S{n}USDT", Decimal(n + 1), Decimal(1)) for n in range(400))
    report = build_daily_report(
        replace(QUIET, kill_switch=True, breaker_open=True, positions=many), utc("2026-03-02 00:00")
    )
    lines = report.message.splitlines()
    assert (report.kind, report.severity) == ("daily_report", "info")
    assert report.title == "Daily report 2026-03-02 (live)"
    assert report.dedup_key == "daily_report:live:2026-03-02"
    assert lines[0] == "Period: 2026-03-01 00:00 to 2026-03-02 00:00 UTC"
    assert "Equity: not valued yet" in lines and "Circuit breaker: open, kill switch on" in lines
    assert lines[-1].startswith("Open positions (400): S0USDT 1 at 1;")
    assert lines[-1].endswith("; 375 more") and len(report.message) <= 4000
    peak_only = build_daily_report(replace(QUIET, equity=Decimal(5)), utc("2026-03-02 00:00"))
    assert "Equity: 5 (no peak recorded yet)" in peak_only.message
