"""How every alert channel reads an HTTP answer (RFC 9110): 2xx is sent, 429 and 5xx are worth
a retry, another 4xx is not, and `Retry-After` is read in either of its two forms, a number of
seconds or an HTTP date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from mastertrade.alerts.adapters.channels.base import ChannelError, check_answer


def _refusal(status: int, **headers: str) -> ChannelError:
    with pytest.raises(ChannelError) as refused:
        check_answer("slack", httpx.Response(status, headers=headers, text="slow down"))
    return refused.value


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def test_a_success_is_no_error() -> None:
    check_answer("slack", httpx.Response(204))


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (503, True), (400, False)])
def test_429_and_5xx_are_retried_other_4xx_are_not(status: int, retryable: bool) -> None:
    error = _refusal(status)
    assert error.retryable is retryable
    assert f"HTTP {status}" in str(error)


def test_retry_after_in_seconds() -> None:
    assert _refusal(429, **{"Retry-After": "17"}).retry_after == 17.0


def test_retry_after_as_a_date_counts_from_the_answers_own_date() -> None:
    """The server's clock may be far from ours: its Date and its Retry-After come from the same
    clock, so the wait is their difference (here a server an hour ahead asks for 2 minutes)."""
    sent = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    headers = {"Date": _http_date(sent), "Retry-After": _http_date(sent + timedelta(seconds=120))}
    assert _refusal(503, **headers).retry_after == 120.0


def test_retry_after_as_a_date_without_the_answers_date_counts_from_our_clock() -> None:
    until = datetime.now(UTC) + timedelta(seconds=300)
    delay = _refusal(429, **{"Retry-After": _http_date(until)}).retry_after
    assert delay is not None and 295 <= delay <= 300


def test_a_date_already_past_asks_for_no_wait() -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    assert _refusal(429, **{"Retry-After": _http_date(past)}).retry_after == 0.0


@pytest.mark.parametrize("value", ["soon", "-5", "nan", "Thu, 32 Foo 2026 99:00:00 GMT"])
def test_a_retry_after_that_is_neither_gives_the_usual_backoff(value: str) -> None:
    assert _refusal(429, **{"Retry-After": value}).retry_after is None
