"""Consuming a queue of the topology with at-least-once, never-falsely-acknowledged delivery.

A message is acknowledged only after its handler returned; a handler that raises gets the
message rejected without requeue, so the broker dead-letters it (every queue of the topology
has the dead-letter exchange) for a person to look at. On shutdown the consumer first stops
taking messages, then waits for the handlers in flight; anything still unacknowledged when the
channel closes is redelivered by the broker to another instance: handed back, never lost.

A consumer can be paused (`paused`, `pause`) and resumed: the queue is declared, no message is
taken. A handler that raises `Requeue` hands its message back to the queue, for whichever
instance takes it next (a pod that no longer leads a duty, see `core/leadership.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from mastertrade_model.topology import Queue

logger = logging.getLogger("mastertrade.consumer")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Requeue(Exception):  # noqa: N818 (an instruction to the consumer, not an error)
    """Raised by a handler to hand its message back to the queue, not handled, not dead."""


class Consumer:
    """One queue, one handler, a bounded number of messages in flight."""

    def __init__(self, queue: Queue, handler: Handler, prefetch: int = 10) -> None:
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.handled = 0
        self.rejected = 0
        self._amqp_queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._asking: asyncio.Future[Any] | None = None  # a backlog question the broker has
        self.paused = False  # declared but taking no messages, until `resume`
        # start, resume and pause one at a time: a pause while a consume is on the wire would
        # find no consumer to cancel, and the consumer would then run paused
        self._switching = asyncio.Lock()

    async def start(self, channel: AbstractChannel) -> None:
        """Declare the queue on `channel` and, unless paused, begin consuming (a robust
        channel restores this after a reconnect)."""
        async with self._switching:
            await channel.set_qos(prefetch_count=self.prefetch)
            self._amqp_queue = await channel.declare_queue(
                self.queue.name, durable=True, arguments=self.queue.declared_arguments()
            )
            self._tag = None
            if not self.paused:
                self._tag = await self._amqp_queue.consume(self._on_message)

    async def resume(self) -> None:
        """Begin taking messages on the channel of the last `start` (none yet: the broker is
        not connected, and the next `start` begins)."""
        async with self._switching:
            self.paused = False
            if self._amqp_queue is not None and self._tag is None:
                self._tag = await self._amqp_queue.consume(self._on_message)

    async def pause(self, timeout: float) -> None:
        """Stop taking messages and wait for those in flight, as `stop` does, until `resume`."""
        async with self._switching:
            self.paused = True
            await self.stop(timeout)

    async def backlog(self, timeout: float = 1.0) -> int | None:
        """Messages ready in the queue (a passive declare), or None while it cannot be asked
        within `timeout`. A question the broker is slow to answer is left to finish, never
        cancelled: aiormq closes a channel whose RPC was cancelled on the wire, and this channel
        is the one the handlers ack and publish on (closing it would hand every message in
        flight back to the broker, to be handled again). While it is out, no other is asked."""
        if self._amqp_queue is None:
            return None
        if self._asking is None or self._asking.done():
            self._asking = asyncio.ensure_future(self._amqp_queue.declare())
            self._asking.add_done_callback(_retrieve)
        try:
            declared = await asyncio.wait_for(asyncio.shield(self._asking), timeout)
        except Exception as error:  # the broker is down: /health and dependency_up say so
            logger.debug("asking %s for its backlog failed: %s", self.queue.name, error)
            return None
        count = declared.message_count
        return int(count) if count is not None else None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._handle(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            payload = json.loads(message.body)
            if not isinstance(payload, dict):
                raise TypeError("message body is not a JSON object")
            await self.handler(payload)
        except Requeue as reason:
            logger.info("a message from %s handed back to the queue: %s", self.queue.name, reason)
            await message.nack(requeue=True)
            return
        except Exception:
            logger.exception(
                "handling a message from %s failed; dead-lettering it", self.queue.name
            )
            self.rejected += 1
            await message.reject(requeue=False)
            return
        await message.ack()
        self.handled += 1

    async def stop(self, timeout: float) -> None:
        """Stop taking messages, then give the handlers in flight `timeout` seconds to finish."""
        if self._amqp_queue is not None and self._tag is not None:
            try:
                await asyncio.wait_for(self._amqp_queue.cancel(self._tag), timeout)
            except Exception as error:
                logger.warning("cancelling the consumer of %s failed: %s", self.queue.name, error)
            self._tag = None
        pending = set(self._in_flight)
        if pending:
            logger.info("waiting for %d message(s) in flight on %s", len(pending), self.queue.name)
            _, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                logger.warning(
                    "%d message(s) on %s not finished; the broker will redeliver them",
                    len(still),
                    self.queue.name,
                )


def _retrieve(asked: asyncio.Future[Any]) -> None:
    """Take a finished backlog question's error, if any (logged by the caller that waited; one
    that stopped waiting has said so already), so asyncio does not report it as lost."""
    if not asked.cancelled():
        asked.exception()
