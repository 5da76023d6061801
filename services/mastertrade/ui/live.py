"""Live updates: one poller reads the upstreams every UI_POLL_SECONDS and hands each snapshot
to every open server-sent events stream, so a hundred open pages cost the upstreams what one
does. A new stream gets the latest snapshot at once (the page shows data without waiting a
period), then each new one; a slow client skips snapshots rather than holding memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

logger = logging.getLogger("mastertrade.ui.live")

Collect = Callable[[], Awaitable[dict[str, Any]]]
HEARTBEAT_SECONDS = 15.0
# A stream ends after this long and the browser reconnects at once (`retry`), getting the latest
# snapshot: uvicorn waits for open responses when it stops (25 s at most, core/server.py), and a
# stream that never ended would hold every rolling update that long.
STREAM_SECONDS = 20.0
RETRY_MILLISECONDS = 500


def sse_event(event: str, data: dict[str, Any], event_id: int) -> bytes:
    """One server-sent event (the JSON on one `data:` line: it holds no newline)."""
    body = json.dumps(data, separators=(",", ":"), default=str)
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n".encode()


class LiveFeed:
    """The latest snapshot and the streams waiting for the next one."""

    def __init__(self, collect: Collect, interval: float) -> None:
        self.collect = collect
        self.interval = interval
        self.latest: dict[str, Any] | None = None
        self.version = 0
        self._changed = asyncio.Condition()
        self._lock = asyncio.Lock()

    async def refresh(self) -> dict[str, Any]:
        """Read the upstreams now and publish the snapshot."""
        async with self._lock:
            snapshot = await self.collect()
            async with self._changed:
                self.latest = snapshot
                self.version += 1
                self._changed.notify_all()
        return snapshot

    async def run(self) -> None:
        """Poll until cancelled; a failed read is logged and tried again next period."""
        while True:
            try:
                await self.refresh()
            except Exception:
                logger.exception("reading the upstreams failed; trying again in %ss", self.interval)
            await asyncio.sleep(self.interval)

    async def current(self) -> dict[str, Any]:
        """The latest snapshot, read now if there is none yet."""
        return self.latest if self.latest is not None else await self.refresh()

    async def stream(self) -> AsyncIterator[bytes]:
        """Server-sent events: the latest snapshot, then every new one for STREAM_SECONDS; a
        comment line when nothing new came for a while, so proxies keep the connection open."""
        snapshot = await self.current()
        seen = self.version
        yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        yield sse_event("snapshot", snapshot, seen)
        end = asyncio.get_running_loop().time() + STREAM_SECONDS
        while asyncio.get_running_loop().time() < end:
            fresh = await self._next(seen, min(HEARTBEAT_SECONDS, STREAM_SECONDS))
            if fresh is None:
                yield b": still here\n\n"
                continue
            seen, snapshot = fresh
            yield sse_event("snapshot", snapshot, seen)

    async def _next(self, seen: int, timeout: float) -> tuple[int, dict[str, Any]] | None:
        """The first snapshot newer than `seen`, or None after `timeout` seconds without one
        (the lock is never held while a stream waits on its client)."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen), timeout)
            except TimeoutError:
                return None
            return self.version, self.latest or {}
