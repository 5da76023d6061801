"""create_app for order_executor: approved orders in, fills booked, order events out.

Each approved order is recorded before it is executed (a live one committed before it is sent;
paper ones in the transaction that executes their batch), executed idempotently, and its
message acknowledged only after both committed. Approved orders wait (unacknowledged: the
consumer starts with the broker connection) until the paper account is opened. At start-up,
and then every ORDER_POLL_SECONDS (paper) or BINANCE_POLL_SECONDS (live), orders still in
flight are reconciled (a `new` order left by a crash is executed; a resting paper limit order
is matched; a live one is queried), the equity is revalued and the outbox flushed; live, a halt
of the risk manager with orders open that it stops starts the next round within a second, to
cancel them (after one that cancelled or rejected nothing, HALT_RETRY_SECONDS later at the
soonest).
Each order is reconciled on its own: one that fails is logged with its id and left in flight
for the next round, and the others, and the valuation, go on.
An approval made for the other TRADING_ENVIRONMENT (the risk manager and the executor switched
between paper and live at different moments of an upgrade) is refused and dead-lettered, never
executed: a live executor takes only live approvals, a paper one paper approvals and those from
before approvals named their environment.

Live, the user-data stream brings fills as they happen; the poll only catches what it missed,
and costs request weight (Binance allows 6000 a minute per IP): 20 for the account, 4 per order
in flight. Every 10 s (the default) that is 120 + 24 per order a minute; every 0.5 s, the
paper venue's pace, 2400 + 480 per order, over the limit with eight orders resting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any, Protocol

import redis.asyncio as aioredis
from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import add_background
from mastertrade.core.batching import MAX_BATCH as BATCH_PREFETCH
from mastertrade.core.db import GENERIC_PLANS
from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.outbox import HeldCheck, OutboxSender, publish_outbox
from mastertrade.core.retry import retry_transient
from mastertrade.core.runtime import Runtime
from mastertrade.execution.adapters.batcher import OrderBatcher
from mastertrade.execution.adapters.binance import BinanceClient, BinanceError
from mastertrade.execution.adapters.books import open_account
from mastertrade.execution.adapters.live import LiveVenue
from mastertrade.execution.adapters.orders import fetch_in_flight, record_order
from mastertrade.execution.adapters.paper import PaperConfig, PaperVenue
from mastertrade.execution.adapters.quotes import Quotes
from mastertrade.execution.adapters.user_stream import run_user_stream
from mastertrade.execution.api import router
from mastertrade.execution.domain.binance_status import BinanceAnswerError, fee_symbols
from mastertrade.execution.settings import ExecutionSettings

Settings = ExecutionSettings
QUEUE = "order_executor.approved_orders"
STALE_NEW_SECONDS = 5.0
HALT_CHECK_SECONDS = 1.0
# After a halt-triggered round that cancelled or rejected no order (a buy Binance cannot settle
# yet: its query failing, or one it never got, within its resend window; a fill of another
# order does not count), the next one waits this long:
# every round asks for each order in flight (weight 4) and the account (weight 20), and one a
# second would spend 1200 of Binance's 6000 a minute on the account alone.
HALT_RETRY_SECONDS = 5.0
HALTED_STATUSES = frozenset({"cancelled", "rejected"})
logger = logging.getLogger("mastertrade.execution")


class ForeignApprovalError(ValueError):
    """An approved order made against the other environment's books."""


def check_environment(order: ApprovedOrder, environment: str) -> None:
    """Raise ForeignApprovalError unless `order` was approved for `environment`; an approval
    naming none (from a risk manager of before) passes for paper only, where it costs nothing."""
    if order.environment == environment or (order.environment is None and environment == "paper"):
        return
    raise ForeignApprovalError(
        f"order {order.client_order_id} was approved for "
        f"{order.environment or 'an unnamed environment (a risk manager of an older version)'}"
        f" and this executor trades {environment}: refused, not executed; check that the risk "
        "manager and the order executor run with the same TRADING_ENVIRONMENT"
    )


def _redis(settings: ExecutionSettings) -> aioredis.Redis:
    url = settings.redis_url or "redis://redis-not-configured.invalid:6379/0"
    # A missing REDIS_URL shows up as "no quote" rejections naming the Redis key, not a crash
    return aioredis.Redis.from_url(url, socket_timeout=settings.dependency_timeout)


class Venue(Protocol):
    in_flight: tuple[str, ...]

    async def execute(self, client_order_id: str) -> OrderEvent | None: ...

    async def revalue(self) -> Decimal | None: ...

    async def halt_pending(self) -> bool: ...


class Executor:
    """The handler of approved orders and the reconcile loop, around one venue."""

    def __init__(self, settings: ExecutionSettings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.client = _redis(settings)
        self.binance: BinanceClient | None = None
        self.sender: OutboxSender | None = None
        self.release_held = HeldCheck()  # events held for a missing exchange, once it is back
        self.venue = self._venue(settings)
        self.batcher: OrderBatcher | None = None
        self.opened = asyncio.Event()
        """Set once the paper account is open (live has none to open: set at the first round)."""
        self.prefetch = 10  # the consumer's messages in flight
        self.valued = True  # whether the last revaluation stored an equity (said when it changes)
        self.changed = 0  # orders the last reconcile cancelled or rejected (a halt's work)
        self.halt_round = False  # whether the round under way was started by a halt
        self.poll_seconds = settings.order_poll_seconds
        if settings.trading_environment == "live":
            self.poll_seconds = settings.binance_poll_seconds
        if isinstance(self.venue, PaperVenue):
            self.batcher = OrderBatcher(self.venue)
            self.prefetch = BATCH_PREFETCH  # a batch can grow as large as the backlog

    def _venue(self, settings: ExecutionSettings) -> Venue:
        pool = lambda: self.live.pool  # noqa: E731 - the pool exists only once started
        if settings.trading_environment == "live":
            assert settings.binance_api_key and settings.binance_api_secret
            self.binance = BinanceClient(
                settings.binance_base_url, settings.binance_api_key.get_secret_value(),
                settings.binance_api_secret.get_secret_value(), settings.binance_recv_window,
                settings.binance_timeout_seconds,
            )  # fmt: skip
            # BNB, which pays the fees when the account says so, is valued at every valuation
            quotes = Quotes(lambda: self.client, settings.price_max_age_seconds,
                            fee_symbols(settings.quote_asset))  # fmt: skip
            return LiveVenue(pool, self.binance, settings.quote_asset, quotes,
                             settings.max_price_deviation_pct)  # fmt: skip
        config = PaperConfig(
            quote_asset=settings.quote_asset, fee_rate=settings.paper_fee_rate,
            slippage=settings.paper_slippage_pct, max_price_age=settings.price_max_age_seconds,
            environment=settings.trading_environment,
            max_price_deviation=settings.max_price_deviation_pct,
        )  # fmt: skip
        # a paper batch's events are sent by the executor itself right after its commit
        self.sender = OutboxSender(lambda: self.live.channel, "order")
        return PaperVenue(pool, lambda: self.client, config, self.sender)

    @property
    def live(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    async def __call__(self, payload: dict[str, Any]) -> None:
        order = ApprovedOrder.model_validate(payload)
        check_environment(order, self.settings.trading_environment)  # dead-lettered if not
        # The consumer starts with the broker connection, before the loop opened the account:
        # an order taken earlier would find no balance and be dead-lettered. It waits in hand
        # (unacknowledged, so a shutdown meanwhile hands it back to the broker).
        await self.opened.wait()
        if self.batcher is not None:
            await self.batcher.submit(order)  # recorded, executed and published in a batch
            return
        env = self.settings.trading_environment
        await retry_transient(lambda: record_order(self.live.pool, order, env), "recording")
        try:
            await retry_transient(lambda: self.venue.execute(order.client_order_id), "executing")
        # recorded, so not dead-lettered: the reconcile loop takes it from here
        except (BinanceError, BinanceAnswerError) as error:
            logger.warning("executing order %s failed (%s): it stays in flight, and the reconcile "
                           "loop tries it again", order.client_order_id, error)  # fmt: skip
        await self.flush()

    async def flush(self) -> None:
        """Mark what the sender sent and no batch marked, then publish what is left over."""
        try:
            if self.sender is not None:
                await self.sender.mark_confirmed(self.live.pool)
            await self.release_held(self.live.pool, self.live.channel)
            await publish_outbox(self.live.pool, self.live.channel)
        except Exception as error:  # the loop publishes it later
            logger.warning("publishing order events failed, will retry: %s", error)

    async def reconcile(self, statuses: list[str], min_age: float = 0.0) -> int:
        """Execute every order of the environment in one of `statuses` (a `new` one only once
        `min_age` seconds old); returns how many."""
        env = self.settings.trading_environment
        self.changed = 0
        ids = await fetch_in_flight(self.live.pool, env, statuses, min_age)
        for client_order_id in ids:
            try:
                event = await self.venue.execute(client_order_id)
                # what a halt-triggered round is for: an order the halt stopped, cancelled
                self.changed += event is not None and event.status in HALTED_STATUSES
            except Exception as error:  # this order only: the others, and the valuation, go on
                logger.warning(
                    "reconciling order %s failed (%s: %s); it stays in flight and is tried again "
                    "in %.1fs. If this repeats, look it up by its client order id on the venue "
                    "and in the orders table", client_order_id, type(error).__name__, error,
                    self.poll_seconds,
                )  # fmt: skip
        return len(ids)

    async def open(self) -> None:
        settings = self.settings
        if settings.trading_environment == "paper":
            await open_account(self.live.pool, "paper", settings.quote_asset,
                               settings.paper_trading_initial_balance)  # fmt: skip
        # new orders need not wait for the reconcile of those a crash left (live, Binance may be
        # slow to answer for each): the paper batches' version check keeps the two apart
        self.opened.set()
        found = await self.reconcile(list(self.venue.in_flight))
        logger.info("account open; reconciled %d order(s) left in flight", found)

    async def run(self) -> None:
        """Open the account, reconcile crashed orders, then poll until cancelled."""
        opened = False
        try:
            while True:
                try:
                    if not opened:
                        await self.open()
                        opened = True
                    await self.reconcile(list(self.venue.in_flight), STALE_NEW_SECONDS)
                    self._note_valuation(await self.venue.revalue())
                    await self.flush()
                except Exception as error:  # a dependency or the schema is missing: next round
                    logger.warning("reconcile round failed: %s", error)
                await self._until_next_round()
        finally:
            logger.info("reconcile loop stopped")

    def _note_valuation(self, equity: Decimal | None) -> None:
        """Say when the account stops being valued (a coin has no fresh quote) and when it
        is valued again: meanwhile the risk manager refuses buys as the equity ages."""
        if (equity is not None) == self.valued:
            return
        self.valued = equity is not None
        if equity is None:
            logger.warning("the account is not valued: a coin it holds beyond dust (a "
                           "position's, or live, BNB kept for fees: BNB<QUOTE_ASSET> must be "
                           "among market data's symbols) has no quote fresher than "
                           "PRICE_MAX_AGE_SECONDS (is market data flowing?); its equity is not "
                           "stored, and once older than MAX_EQUITY_AGE_SECONDS the risk manager "
                           "refuses buys")  # fmt: skip
        else:
            logger.info("the account is valued again: equity %s", equity)

    async def _until_next_round(self) -> None:
        """`poll_seconds`, or less: once the risk manager halts trading with orders it stops open
        (live), the next round starts within HALT_CHECK_SECONDS and cancels them, instead of
        leaving them to the next poll (BINANCE_POLL_SECONDS); after a halt-triggered round that
        cancelled or rejected no order, not before HALT_RETRY_SECONDS."""
        now = time.monotonic()
        deadline = now + self.poll_seconds
        quiet = self.halt_round and not self.changed
        halt_checks_from = now + HALT_RETRY_SECONDS if quiet else now
        self.halt_round = False
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(HALT_CHECK_SECONDS, left))
            if time.monotonic() < halt_checks_from:
                continue
            try:
                if await self.venue.halt_pending():
                    logger.warning(
                        "trading halted with orders open that the halt stops: "
                        "reconciling now to cancel them"
                    )
                    self.halt_round = True
                    return
            except Exception as error:  # the database is down: the round will say so
                logger.debug("checking for a halt failed: %s", error)

    async def close(self) -> None:
        await self.client.aclose()
        if self.binance is not None:
            await self.binance.close()


def create_app(settings: ExecutionSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    executor = Executor(settings)
    spec = find_service("order_executor")
    app = build_service_app(
        spec, settings, [router], {QUEUE: executor}, database_settings=GENERIC_PLANS
    )
    executor.runtime = app.state.runtime
    app.state.executor = executor
    if (sender := executor.sender) is not None:
        executor.live.on_drained.append(lambda: sender.finish(executor.live.pool))

    async def start() -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(executor.run())]
        if executor.binance is not None:
            stream = run_user_stream(executor.binance, settings.binance_ws_api_url,
                                     lambda: executor.live.pool, settings.quote_asset)  # fmt: skip
            tasks.append(asyncio.create_task(stream))
        return tasks

    add_background(app, start, executor.close)
    return app
