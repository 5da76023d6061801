"""Pure scheduling rules of strategy generation."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta


def next_generation_at(now: datetime, at: time) -> datetime:
    """The next UTC instant at time-of-day `at` strictly after `now` (an aware datetime)."""
    current = now.astimezone(UTC)
    candidate = datetime.combine(current.date(), at, tzinfo=UTC)
    if candidate <= current:
        candidate += timedelta(days=1)
    return candidate
