"""What every channel is: a name and `send(alert)`, raising ChannelError when it failed, and
returning what went wrong when it was sent to only some of its recipients (e-mail), else None.
When some recipients got it and others may on a retry (an address greylisted with a 4xx), it
raises PartlySentError instead, whose `rest` is the channel sending to those others only: a retry
never reaches twice those who got it. A channel whose settings cannot work is not built:
ChannelConfigError says which setting and why (adapters/channels/build.py turns it off).

`retryable` says whether trying again may help (a timeout, a 5xx, a 429) and `retry_after`
carries the wait the service asked for (Telegram's `parameters.retry_after`, Discord's
`retry_after`, a `Retry-After` header). HTTP answers are sorted here once for every channel.
A `retry_after` is read with `read_seconds`: an answer that is not the documented shape (a
string, a list) gives no delay rather than an exception that would end the delivery.
"""

from __future__ import annotations

import math
from typing import Protocol

import httpx

from mastertrade.core.messages import AlertEvent


class ChannelConfigError(ValueError):
    """A channel's settings cannot work; the message names the setting and why, never a
    secret's value."""


class ChannelError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


class Channel(Protocol):
    name: str

    async def send(self, alert: AlertEvent) -> str | None: ...


class PartlySentError(ChannelError):
    """Sent to some recipients; others were refused for now. `rest` sends to those only;
    `refused` says what to record of the recipients no retry will reach (None: none). The
    message says what this attempt did, for when no retry follows."""

    def __init__(
        self, message: str, rest: Channel, refused: str | None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)
        self.rest, self.refused = rest, refused


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
    return read_seconds(response.headers.get("Retry-After"))


def check_answer(name: str, response: httpx.Response, retry_after: float | None = None) -> None:
    """Raise ChannelError unless 2xx; 429 and 5xx are retryable, other 4xx are not."""
    if response.is_success:
        return
    status = response.status_code
    delay = retry_after if retry_after is not None else _header_delay(response)
    text = response.text[:300]
    raise ChannelError(f"{name}: HTTP {status}: {text}", status == 429 or status >= 500, delay)


async def post(name: str, client: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    """POST, turning transport failures (timeouts, refused connections) into retryable errors."""
    try:
        return await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        raise ChannelError(f"{name}: {error!r}", retryable=True) from error
