"""The alert system's per-channel rate limit: a critical alert always goes, and counts; what it
holds back is told in a digest, at once and then at most once a window per channel."""

from __future__ import annotations

import time
from collections import Counter

from mastertrade.alerts.domain.delivery import HeldBack, RateLimiter, admit, held_back_alert
from mastertrade.alerts.service import tell_held_back
from mastertrade.core.messages import AlertEvent


def test_a_critical_alert_passes_a_full_window_and_counts_toward_it() -> None:
    limiter = RateLimiter(2)
    assert [limiter.allow("sms", t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert limiter.allow("sms", 3.0, urgent=True)  # over the limit, sent all the same
    assert not limiter.allow("sms", 60.5)  # 1.0 and the critical 3.0 still fill the window
    assert limiter.allow("sms", 63.0)  # both have left it
    assert limiter.allow("email", 3.0)  # each channel has its own window


def test_what_a_rate_limit_held_back_is_told_at_once_then_once_a_window() -> None:
    held = HeldBack(window=60.0)
    assert held.due(0.0) == {}  # nothing held back: no digest
    held.hold("slack", "order_filled")
    assert held.due(5.0) == {"slack": Counter({"order_filled": 1})}  # the first one at once
    for kind in ("order_filled", "order_filled", "order_rejected"):
        held.hold("slack", kind)
    held.hold("sms", "order_filled")
    # slack's last digest is 5 s old: its next waits for the window; sms has had none yet
    assert held.due(30.0) == {"sms": Counter({"order_filled": 1})}
    assert held.due(64.9) == {}
    assert held.due(65.0) == {"slack": Counter({"order_filled": 2, "order_rejected": 1})}
    assert held.due(200.0) == {}  # told once: nothing held back since


def test_a_digest_that_could_not_be_stored_is_told_in_the_next_round() -> None:
    held = HeldBack(window=60.0)
    held.hold("email", "order_filled")
    taken = held.due(0.0)["email"]
    held.hold("email", "order_filled")
    held.put_back("email", taken)
    assert held.due(10.0) == {"email": Counter({"order_filled": 2})}


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


async def test_a_digest_that_fails_is_put_back_and_the_other_channels_are_told() -> None:
    held, told = HeldBack(), []
    for channel in ("email", "slack", "sms"):
        held.hold(channel, "order_filled")

    async def raise_alert(alert: AlertEvent, channel: str) -> int | None:
        if channel == "email":
            raise ConnectionError("the database is away")
        told.append((channel, alert.title))
        return 1

    await tell_held_back(held, 20, raise_alert)
    assert told == [("slack", "1 alert not sent on slack: over its rate limit"),
                    ("sms", "1 alert not sent on sms: over its rate limit")]  # fmt: skip
    assert held.due(time.monotonic()) == {"email": Counter({"order_filled": 1})}
