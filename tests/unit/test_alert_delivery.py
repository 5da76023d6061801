"""The alert system's per-channel rate limit: a critical alert always goes, and counts; the
digest of what it held back names each kind and goes over it (which deliveries a digest tells,
and when: tests/services/test_alert_digests.py)."""

from __future__ import annotations

from collections import Counter

from mastertrade.alerts.domain.delivery import RateLimiter, admit, held_back_alert, retry_delay


def test_a_critical_alert_passes_a_full_window_and_counts_toward_it() -> None:
    limiter = RateLimiter(2)
    assert [limiter.allow("sms", t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert limiter.allow("sms", 3.0, urgent=True)  # over the limit, sent all the same
    assert not limiter.allow("sms", 60.5)  # 1.0 and the critical 3.0 still fill the window
    assert limiter.allow("sms", 63.0)  # both have left it
    assert limiter.allow("email", 3.0)  # each channel has its own window


def test_a_digest_names_the_channel_the_limit_and_each_kind() -> None:
    alert = held_back_alert("slack", Counter({"order_filled": 7, "order_rejected": 2}), 20)
    assert alert.title == "9 alerts not sent on slack: over its rate limit"
    assert "at most 20 alerts a minute" in alert.message
    assert "order_filled x7" in alert.message and "order_rejected x2" in alert.message
    assert alert.severity == "warning"


def test_a_digest_passes_a_full_window_without_taking_a_place_in_it() -> None:
    """Counted, a digest would hold back the next alert, which would bring on the next digest:
    under a steady load at the limit, a digest a minute for ever."""
    limiter, digest = RateLimiter(1), held_back_alert("slack", Counter({"order_filled": 1}), 1)
    fill = digest.model_copy(update={"kind": "order_filled", "severity": "info"})
    assert admit(limiter, "slack", 0.0, fill)
    assert admit(limiter, "slack", 1.0, digest)  # the window is full: it goes all the same
    assert not admit(limiter, "slack", 59.0, fill)  # the window holds the fill at 0.0 only
    assert admit(limiter, "slack", 60.0, fill)  # ... and not the digest at 1.0


def test_a_delivery_taken_over_is_sent_over_a_full_window_and_counts() -> None:
    """A replica that takes over the deliveries another left (an outage, a rolling deploy) sends
    each: they were admitted there, and held back here they would end `rate_limited`, unsent."""
    limiter = RateLimiter(1)
    fill = held_back_alert("slack", Counter({"x": 1}), 1).model_copy(
        update={"kind": "order_filled", "severity": "info"}
    )
    assert admit(limiter, "slack", 0.0, fill)
    assert not admit(limiter, "slack", 1.0, fill)
    assert admit(limiter, "slack", 2.0, fill, taken_over=True)
    assert not admit(limiter, "slack", 61.0, fill)  # the one taken over, at 2.0, counted


def test_the_backoff_is_capped_however_many_attempts_came_before() -> None:
    assert retry_delay(1, 1.0, 60.0, None, 900.0) == 1.0
    assert retry_delay(4, 1.0, 60.0, None, 900.0) == 8.0
    assert retry_delay(5000, 1.0, 60.0, None, 900.0) == 60.0  # 2.0 ** 4999 would overflow
    assert retry_delay(3, 1.0, 60.0, 1200.0, 900.0) == 900.0  # a server's wait, to its cap
