"""The alert system's per-channel rate limit: a critical alert always goes, and counts."""

from __future__ import annotations

from mastertrade.alerts.domain.delivery import RateLimiter


def test_a_critical_alert_passes_a_full_window_and_counts_toward_it() -> None:
    limiter = RateLimiter(2)
    assert [limiter.allow("sms", t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert limiter.allow("sms", 3.0, urgent=True)  # over the limit, sent all the same
    assert not limiter.allow("sms", 60.5)  # 1.0 and the critical 3.0 still fill the window
    assert limiter.allow("sms", 63.0)  # both have left it
    assert limiter.allow("email", 3.0)  # each channel has its own window
