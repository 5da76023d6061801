"""The daily report: when it is due, and its text from one environment's figures (pure).

The report of a day goes out at ALERT_DAILY_REPORT_TIME (UTC) and covers the 24 hours before
that instant, whenever it is actually sent (a report caught up at start-up covers the same
window as the one it replaces, and each day missed gets its own: `missed_reports`), so every
replica would write the same figures. Amounts are Decimal from NUMERIC columns, written out
exactly (trailing zeros dropped, never an exponent); the drawdown is the risk manager's: the
fall from the equity peak as a share of the peak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from mastertrade.core.amounts import exact_arithmetic
from mastertrade.core.messages import AlertEvent

DAY = timedelta(days=1)
DAILY_REPORT_KIND = "daily_report"
TIME_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
OFF = {"", "off"}
POSITIONS_LISTED = 25  # a longer list is cut: the message must stay within 4000 characters


def parse_report_time(text: str) -> time | None:
    """`HH:MM` or `HH:MM:SS` as a UTC time; None for "off" (or blank); else ValueError."""
    cleaned = text.strip().lower()
    if cleaned in OFF:
        return None
    match = TIME_PATTERN.match(cleaned)
    if match is None:
        raise ValueError(f'{text!r} is not a time of day: write "HH:MM" in UTC, or "off"')
    hour, minute, second = (int(part or 0) for part in match.groups())
    return time(hour, minute, second, tzinfo=UTC)


def due_report(now: datetime, at: time) -> datetime:
    """The latest instant at `at` that is not after `now`: the report that should exist."""
    today = datetime.combine(now.astimezone(UTC).date(), at)
    return today if today <= now else today - DAY


def next_report(now: datetime, at: time) -> datetime:
    """The first instant at `at` after `now`."""
    return due_report(now, at) + DAY


def missed_reports(last: datetime | None, due: datetime, most: int) -> tuple[list[datetime], int]:
    """The reports to write when `due` is due and the last one written ended at `last` (None:
    none ever, and only `due` is written): one for each day after `last`'s up to `due`'s,
    ending at the time `due` does, oldest first, the latest `most` of them; and how many older
    ones are left out. Counted in days, not from `last`'s time: after the report time is moved
    later, `last`'s own day would come up again."""
    if last is None:
        return [due], 0
    count = max((report_day(due) - report_day(last)).days, 0)
    kept = min(count, most)
    return [due - DAY * back for back in reversed(range(kept))], count - kept


@dataclass(frozen=True)
class Holding:
    symbol: str
    quantity: Decimal
    average_price: Decimal


@dataclass(frozen=True)
class DailyFigures:
    """One environment's figures: the window's activity, and the state at the time of writing."""

    environment: str
    fills: int
    traded_value: Decimal
    fees: tuple[tuple[str, Decimal], ...]  # (asset, total), an unknown asset as ""
    orders_rejected: int
    signals_rejected: int
    equity: Decimal | None
    equity_peak: Decimal | None
    breaker_open: bool
    breaker_reason: str | None
    kill_switch: bool
    positions: tuple[Holding, ...]


def show(amount: Decimal) -> str:
    """An exact amount as plain digits: 1.50000 -> 1.5, 1E+2 -> 100."""
    text = format(amount.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def drawdown_pct(equity: Decimal, peak: Decimal) -> Decimal:
    """The fall from `peak` in percent, two decimals (0 at or above the peak)."""
    if peak <= 0 or equity >= peak:
        return Decimal("0.00")
    with exact_arithmetic():  # rounded once, half up, not first to 28 digits half even
        return ((peak - equity) * 100 / peak).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _fees(fees: tuple[tuple[str, Decimal], ...]) -> str:
    if not fees:
        return "0"
    return ", ".join(f"{show(total)} {asset}".rstrip() for asset, total in fees)


def _equity(figures: DailyFigures) -> str:
    if figures.equity is None:
        return "Equity: not valued yet"
    if figures.equity_peak is None:
        return f"Equity: {show(figures.equity)} (no peak recorded yet)"
    fall = drawdown_pct(figures.equity, figures.equity_peak)
    return (
        f"Equity: {show(figures.equity)}, peak {show(figures.equity_peak)}, "
        f"drawdown from the peak {fall}%"
    )


def _breaker(figures: DailyFigures) -> str:
    state = "open" if figures.breaker_open else "closed"
    if figures.breaker_open and figures.breaker_reason:
        state += f" ({figures.breaker_reason})"
    kill = ", kill switch on" if figures.kill_switch else ""
    return f"Circuit breaker: {state}{kill}"


def _positions(positions: tuple[Holding, ...]) -> str:
    if not positions:
        return "Open positions: none"
    listed = "; ".join(
        f"{p.symbol} {show(p.quantity)} at {show(p.average_price)}"
        for p in positions[:POSITIONS_LISTED]
    )
    more = len(positions) - POSITIONS_LISTED
    return f"Open positions ({len(positions)}): {listed}" + (f"; {more} more" if more > 0 else "")


def build_daily_report(
    figures: DailyFigures, end: datetime, late: datetime | None = None
) -> AlertEvent:
    """The report alert (kind daily_report, info) of the 24 hours up to `end`; one caught up
    `late` (a day missed while the alert system was down) says that its equity, breaker and
    positions are those of when it was written, not of the end of its period."""
    start = end - DAY
    lines = [
        f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        f"Fills: {figures.fills}, traded value {show(figures.traded_value)}, "
        f"fees {_fees(figures.fees)}",
        f"Orders rejected by the executor: {figures.orders_rejected}",
        f"Signals rejected by the risk manager: {figures.signals_rejected}",
        _equity(figures),
        _breaker(figures),
        _positions(figures.positions),
    ]
    if late is not None:
        written = late.astimezone(UTC)
        lines.insert(1, f"Written late, at {written:%Y-%m-%d %H:%M} UTC: the equity, the "
                        "circuit breaker and the positions are as of then")  # fmt: skip
    return AlertEvent(
        kind=DAILY_REPORT_KIND,
        severity="info",
        title=f"Daily report {report_day(end)} ({figures.environment})",
        message="\n".join(lines)[:4000],
        dedup_key=f"daily_report:{figures.environment}:{report_day(end)}",
        source="alert_system",
    )


def report_day(end: datetime) -> date:
    """The date a report is filed under: the day of its scheduled instant (UTC)."""
    return end.astimezone(UTC).date()
