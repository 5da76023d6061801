"""Binance's user-data stream: fills as they happen, from `executionReport` events.

A connection to the WebSocket API (BINANCE_WS_API_URL) subscribes with
`userDataStream.subscribe.signature` (the key, timestamp and signature of the REST client, so
the same clock offset); Binance answers with a `subscriptionId`, then sends the account's events
as `{"subscriptionId": N, "event": {...}}`. Nothing keeps it alive but the WebSocket pings the
library answers (Binance pings every 20 s). The connection is given up, closed, and a new one
subscribed (after the backoff) whenever it could go silent: it drops (Binance closes it after
24 h), Binance refuses the subscription (its code and message are logged; a -1021 re-syncs the
clock first) or does not answer it, or ends it (`eventStreamTerminated`). What happened
meanwhile comes from the executor's REST poll. Each report is booked like a REST answer, so a
fill seen by both is booked once (by trade id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from mastertrade.execution.adapters.binance import (
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    TIMESTAMP_OUTSIDE_WINDOW,
    BinanceClient,
)
from mastertrade.execution.adapters.live_books import book_report
from mastertrade.execution.domain.binance_status import BinanceAnswerError, parse_execution_report

logger = logging.getLogger("mastertrade.execution.stream")
SUBSCRIBE = "userDataStream.subscribe.signature"
ANSWER_SECONDS = 10.0  # a subscription not answered by then is given up
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
STEADY_SECONDS = 60.0  # a connection that lasted this long starts the backoff over


class StreamEndedError(Exception):
    """The stream must be subscribed again, on a new connection; the message says why."""


class SubscriptionRefusedError(StreamEndedError):
    """Binance answered the subscription with an error (its code, message and status)."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        self.code = error_of(answer).get("code")
        self.status = answer.get("status")
        data = error_of(answer).get("data")
        after = data.get("retryAfter") if isinstance(data, Mapping) else None
        # when the limit lifts, in ms since the epoch (finite: an int), None when not said
        known = isinstance(after, int) and not isinstance(after, bool)
        self.retry_after_ms: int | None = after if known else None
        super().__init__(f"Binance refused the subscription: {describe_error(answer)}")


def error_of(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    error = answer.get("error")
    return error if isinstance(error, Mapping) else {}


def describe_error(answer: Mapping[str, Any]) -> str:
    """`<code> <msg> (status <status>)` of a WebSocket API error answer."""
    error = error_of(answer)
    return f"{error.get('code')} {error.get('msg')} (status {answer.get('status')})"


def build_subscribe_request(client: BinanceClient, request_id: str) -> dict[str, Any]:
    """The signed `userDataStream.subscribe.signature` request, stamped now."""
    return {"id": request_id, "method": SUBSCRIBE, "params": client.ws_api_params()}


def read_answer(message: Mapping[str, Any]) -> int:
    """The subscriptionId of Binance's answer to the subscription; SubscriptionRefusedError
    when it is an error."""
    if message.get("status") != 200:
        raise SubscriptionRefusedError(message)
    return int(message["result"]["subscriptionId"])


async def book_stream_message(
    pool: asyncpg.Pool, message: Mapping[str, Any], subscription: int, quote_asset: str
) -> bool:
    """Book one message of the subscription; True when it was an execution report.
    StreamEndedError on `eventStreamTerminated` (nothing more comes on it) and on an error
    Binance sends unasked (e.g. the key revoked)."""
    if "status" in message and message["status"] != 200:
        raise StreamEndedError(f"Binance sent an error: {describe_error(message)}")
    event = message.get("event")
    if message.get("subscriptionId") != subscription or not isinstance(event, Mapping):
        return False  # an answer to nothing we asked, or another subscription's event
    if event.get("e") == "eventStreamTerminated":
        raise StreamEndedError("Binance ended the subscription (eventStreamTerminated)")
    if event.get("e") != "executionReport":
        return False
    try:
        client_order_id, state, trade = parse_execution_report(event)
    except BinanceAnswerError as error:  # the poll asks Binance for the order instead
        order = event.get("C") or event.get("c")  # a cancel's report names the order in C
        logger.error("an executionReport of order %s could not be booked (%s); the order is "
                     "booked from Binance's answer to the next poll", order, error)  # fmt: skip
        return False
    trades = [trade] if trade is not None else []
    await book_report(pool, client_order_id, state, trades, quote_asset)
    return True


async def _subscribe(socket: ClientConnection, client: BinanceClient) -> int:
    """Send the subscription and wait for its answer; the subscriptionId."""
    request_id = uuid.uuid4().hex
    await socket.send(json.dumps(build_subscribe_request(client, request_id)))
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            async for raw in socket:
                message = json.loads(raw)
                if isinstance(message, dict) and message.get("id") == request_id:
                    return read_answer(message)
    except TimeoutError:
        raise StreamEndedError(
            f"Binance did not answer the subscription within {ANSWER_SECONDS:.0f}s"
        ) from None
    raise StreamEndedError("Binance closed the connection before answering the subscription")


async def _stream_once(
    client: BinanceClient, ws_api_url: str, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    """One connection and its subscription, until either ends (raises why)."""
    async with connect(ws_api_url) as socket:
        subscription = await _subscribe(socket, client)
        logger.info("user-data stream subscribed (subscriptionId %d)", subscription)
        async for raw in socket:
            message = json.loads(raw)
            if isinstance(message, dict):
                await book_stream_message(pool(), message, subscription, quote_asset)
    raise StreamEndedError("Binance closed the connection")


async def run_user_stream(
    client: BinanceClient, ws_api_url: str, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    """Follow the stream until cancelled, subscribing again on a new connection with backoff."""
    delay = FIRST_BACKOFF
    while True:
        if (paused := client.pause_left("GET", "/")) > 0:
            # Binance bans (418) an IP that keeps asking while it is rate limited
            logger.info("user-data stream waits %.0fs: Binance rate limits requests", paused)
            await asyncio.sleep(paused)
        started = time.monotonic()
        try:
            await _stream_once(client, ws_api_url, pool, quote_asset)
        except Exception as error:
            if time.monotonic() - started >= STEADY_SECONDS:
                delay = FIRST_BACKOFF
            logger.warning("user-data stream ended (%s); subscribing again on a new connection "
                           "in %.1fs", error, delay)  # fmt: skip
            if isinstance(error, SubscriptionRefusedError):
                _pause_if_limited(client, error)
                await _resync_if_clock(client, error)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)


def _pause_if_limited(client: BinanceClient, error: SubscriptionRefusedError) -> None:
    """A 429 or 418 to the subscription: every request of the client waits until the time the
    answer's `retryAfter` names (ms since the epoch), as after a REST 429."""
    if error.status not in (429, 418):
        return
    until = error.retry_after_ms
    seconds = (until / 1000 - time.time()) if until is not None else DEFAULT_RETRY_AFTER
    client.pause_requests(min(max(seconds, 1.0), MAX_RETRY_AFTER))


async def _resync_if_clock(client: BinanceClient, error: SubscriptionRefusedError) -> None:
    """A -1021 (our clock outside the recvWindow): the next subscription is stamped right."""
    if error.code != TIMESTAMP_OUTSIDE_WINDOW:
        return
    try:
        await client.sync_time()
    except Exception as failure:  # the next attempt is refused again, and tries again
        logger.warning("re-syncing the clock with Binance failed: %s", failure)
