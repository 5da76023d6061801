"""What every channel is: a name and `send(alert)`, raising ChannelError when it failed, and
returning what went wrong when it was sent to only some of its recipients (e-mail), else None.
When some recipients got it and others may on a retry (an address greylisted with a 4xx), it
raises PartlySentError instead, whose `rest` is the channel sending to those others only (`left`
names them, for the delivery to keep: `narrowed` rebuilds `rest` from it after a restart): a
retry never reaches twice those who got it. A channel whose settings cannot work is not built:
ChannelConfigError says which setting and why (adapters/channels/build.py turns it off).

`retryable` says whether trying again may help (a timeout, a 5xx, a 429), `throttled` that the
service refused for sending too often (a 429: every delivery on the channel waits, and the
refusal spends no attempt), and `retry_after` carries the wait the service asked for
(Telegram's `parameters.retry_after`, Discord's `retry_after`, a `Retry-After` header, in
seconds or as an HTTP date, RFC 9110 10.2.3).
HTTP answers are sorted here once for every channel. A `retry_after` is read with
`read_seconds`: an answer that is not the documented shape (a string, a list) gives no delay
rather than an exception that would end the delivery.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable

import httpx

from mastertrade.core.messages import AlertEvent


class ChannelConfigError(ValueError):
    """A channel's settings cannot work; the message names the setting and why, never a
    secret's value."""


class ChannelError(Exception):
    def __init__(
        self,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        *,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable, self.retry_after, self.throttled = retryable, retry_after, throttled


class Channel(Protocol):
    name: str

    async def send(self, alert: AlertEvent) -> str | None: ...


class PartlySentError(ChannelError):
    """Sent to some recipients; others, `left`, were refused for now. `rest` sends to those
    only; `refused` says what to record of the recipients no retry will reach (None: none).
    The message says what this attempt did, for when no retry follows."""

    def __init__(
        self,
        message: str,
        rest: Channel,
        left: list[str],
        refused: str | None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)
        self.rest, self.left, self.refused = rest, left, refused


@runtime_checkable
class Addressed(Channel, Protocol):
    """A channel with `recipients` of its own (e-mail): `only` sends to some of them."""

    recipients: list[str]

    def only(self, recipients: list[str]) -> Channel: ...


def narrowed(channel: Channel, recipients: list[str]) -> Channel | None:
    """`channel` sending to those of `recipients` (whom a delivery has still to reach) that are
    still its recipients (its settings may have changed since: one removed is not written to);
    None when none is. A channel without recipients of its own is sent as it is."""
    if not isinstance(channel, Addressed):
        return channel
    still = [recipient for recipient in recipients if recipient in channel.recipients]
    return channel.only(still) if still else None


def read_seconds(value: object) -> float | None:
    """`value` as a delay in seconds when it is a finite, non-negative number (or a numeric
    string), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _header_delay(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    seconds = read_seconds(value)
    return seconds if seconds is not None else _date_delay(value, response.headers.get("Date"))


def _date_delay(value: str, sent: str | None) -> float | None:
    """Seconds until the HTTP date `value`, counted from the answer's own `Date` when it has
    one (so a server clock ahead of ours does not stretch the wait), else from our clock;
    0 for a date past; None for anything that is not an HTTP date."""
    until = _http_date(value)
    if until is None:
        return None
    start = _http_date(sent) if sent else None
    return max((until - (start or datetime.now(UTC))).total_seconds(), 0.0)


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # an HTTP date is always GMT; a date without a zone (obsolete forms) is read as GMT too
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def check_answer(name: str, response: httpx.Response, retry_after: float | None = None) -> None:
    """Raise ChannelError unless 2xx; 429 (throttled) and 5xx are retryable, other 4xx are
    not."""
    if response.is_success:
        return
    status = response.status_code
    delay = retry_after if retry_after is not None else _header_delay(response)
    text = response.text[:300]
    throttled = status == 429
    raise ChannelError(
        f"{name}: HTTP {status}: {text}", throttled or status >= 500, delay, throttled=throttled
    )


async def post(name: str, client: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    """POST, turning transport failures (timeouts, refused connections) into retryable errors."""
    try:
        return await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        raise ChannelError(f"{name}: {error!r}", retryable=True) from error
