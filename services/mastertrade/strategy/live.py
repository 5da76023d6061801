"""Active strategies trading live: closed 1m candles from the broker in, signals out.

One pod at a time decides the candles (the one leading, `app.py`), in the order the market
published them. Each closed candle of a symbol is appended to that symbol's recent bars: as many
as a backtest reads (STRATEGY_HISTORY_DAYS of them, at least LIVE_BARS), so the longest rule is
warm and a rule long for days still remembers it (a shorter window forgot a position entered
before it, and never signalled its exit). The bars are read again from PostgreSQL whenever a
candle does not follow the last one seen (a pod taking over from another, a restart or an
outage skips candles), and, while minutes are missing among the recent ones, once PostgreSQL
holds more of them (a backfill stores a gap's candles without publishing them; they are counted
every HOLES_REREAD_SECONDS). The active strategies of the symbol are then
decided by the engine itself (`domain/live.py`), and every buy or sell is published on
`mastertrade.signals` as `signal.<SYMBOL>` in the message the risk manager consumes: a buy of
STRATEGY_SIGNAL_NOTIONAL at the close, a sell of what the strategy holds (`holdings`). After
the bars were read again, and for a strategy this pod decides for the first time, a rule that
changed on candles this pod did not see and whose latest signal went the other way is signalled
too, with the id of the candle it changed on: no change of a rule goes unsignalled, and a pod
that saw that candle sends the same signal id. The signal id is derived from (strategy, symbol,
candle, side), so a candle delivered twice gives the same id and the risk manager decides it
once. A signal is published before its candle is acknowledged, waiting out a broker outage; a
candle that fails after its bar was added has the bar forgotten, so its redelivery is decided
again, not taken for a duplicate. An exit that finds nothing held (its buy not filled yet: a
backlog decides candles milliseconds apart) is looked at again at each candle of the symbol for
EXIT_WAIT_SECONDS, as a missed change is, and sold with the exit candle's id once the buy
filled; an entry meanwhile ends the wait. The active set is re-read from the database every
ACTIVE_REFRESH seconds (a generation run changes it), and a strategy retired meanwhile sends
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from mastertrade.core.amounts import exact_arithmetic
from mastertrade.core.bus import publish_json
from mastertrade.core.consumer import Requeue
from mastertrade.core.messages import Signal, quoted_in
from mastertrade.core.metrics import ServiceMetrics
from mastertrade.core.retry import retry_transient
from mastertrade.core.runtime import Runtime
from mastertrade.market_data.domain.events import kline_from_message, to_millis
from mastertrade.strategy.closing import IN_FLIGHT_SECONDS
from mastertrade.strategy.domain.families import Strategy, StrategyParams
from mastertrade.strategy.domain.live import Decision, Side, latest_changes, latest_decisions
from mastertrade.strategy.holdings import (
    QUANTITY_STEP,
    after,
    buy_may_still_fill,
    held_quantity,
    last_signal,
    rule_is_in,
    sell_in_flight,
    signal_id,
    was_decided,
)
from mastertrade.strategy.store import (
    ActiveStrategy,
    active_strategies,
    bars_stored,
    is_active,
    recent_bars,
)
from mastertrade_model.topology import SIGNALS

logger = logging.getLogger("mastertrade.strategy.live")

LIVE_BARS = 4096  # the fewest: above the longest window a family declares (1440) plus EMA settling
ACTIVE_REFRESH = 30.0
HOLES_REREAD_SECONDS = 120.0
CATCH_UP_BARS = 1440  # how far back a missed change gets the id of the candle it happened on
EXIT_WAIT_SECONDS = IN_FLIGHT_SECONDS  # how long an exit waits for its buy to fill
PARSE_STRATEGY: TypeAdapter[Strategy] = TypeAdapter(StrategyParams)


def minute_time(minute: int) -> datetime:
    """The open time of the bar of `minute` (minutes since the epoch)."""
    return datetime.fromtimestamp(minute * 60, UTC)


@dataclass
class SymbolBars:
    """The recent closed bars of one symbol (at most `window`): open times, opens, closes."""

    window: int = LIVE_BARS
    times: deque[int] = field(init=False)
    opens: deque[float] = field(init=False)
    closes: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self.times, self.opens, self.closes = (deque(maxlen=self.window) for _ in range(3))

    def holes_within(self, last: int) -> bool:
        """Whether minutes are missing among the `last` latest bars (read while a backfill had
        not stored them yet)."""
        if not self.times:
            return False
        first, count = self.latest(last)
        return self.times[-1] - first != count - 1

    def latest(self, last: int) -> tuple[int, int]:
        """The first minute of the `last` latest bars, and how many bars there are (fewer than
        `last` when they are fewer, or when minutes are missing since)."""
        count = min(last, len(self.times))
        return self.times[-count], count

    def append(self, minute: int, open_: float, close: float) -> bool:
        """Add a bar after the last one; False for a bar already seen (a redelivery)."""
        if self.times and minute <= self.times[-1]:
            return False
        self.times.append(minute)
        self.opens.append(open_)
        self.closes.append(close)
        return True


class LiveMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.candles = Counter(
            "mastertrade_strategy_candles_total",
            "Candles received from the broker, by outcome (used, ignored, duplicate, late)",
            ["outcome"],
            registry=metrics.registry,
        )
        self.signals = Counter(
            "mastertrade_strategy_signals_total",
            "Signals published to the risk manager, by side",
            ["side"],
            registry=metrics.registry,
        )


def buy_quantity(notional: Decimal, price: Decimal) -> Decimal:
    """The most whole QUANTITY_STEPs that `notional` buys at `price`, counted exactly (a quotient
    rounded before the step could buy one step more than the notional)."""
    with exact_arithmetic():
        return ((notional // (price * QUANTITY_STEP)) * QUANTITY_STEP).quantize(QUANTITY_STEP)


class LiveTrader:
    """The candle handler of one pod."""

    def __init__(
        self, notional: Decimal, environment: str, history_days: int, quote_asset: str
    ) -> None:
        self.notional = notional
        self.environment = environment  # where the strategies' holdings and signals count
        self.quote_asset = quote_asset  # the account's asset: a buy of a symbol in another fails
        self._unquoted: set[int] = set()  # strategies told of buying a symbol not quoted in it
        self._unreadable: set[int] = set()  # strategies told of parameters that make no rule
        self.window = max(LIVE_BARS, history_days * 1440)  # the bars a backtest reads
        self.runtime: Runtime | None = None
        self._metrics: LiveMetrics | None = None
        self.bars: dict[str, SymbolBars] = {}
        self._read_at: dict[str, float] = {}  # when each symbol's bars were read, monotonic
        self._decided: set[int] = set()  # the strategies this pod has decided before
        # per symbol, the minute of the last candle decided: a candle at or before it is a
        # redelivery (the bars cannot tell: a read may hold candles stored but not decided yet)
        self._last_decided: dict[str, int] = {}
        # strategies whose exit found nothing held yet, until when it is looked at again
        self._exits_waiting: dict[int, float] = {}
        self._active: list[tuple[ActiveStrategy, Strategy]] = []
        self._loaded_at = float("-inf")
        # the consumer runs handlers concurrently; candles must be applied one at a time, in order
        self._lock = asyncio.Lock()
        self.leading = False  # this pod decides the candles (it holds LIVE_DECISIONS_LOCK)

    async def take_over(self) -> None:
        """This pod now decides the candles: what it remembers of the bars and of the signals
        dates from before another pod decided, so it reads both again (once no candle of an
        earlier term is being decided: those give up at their next publish, `_still_leading`)."""
        async with self._lock:
            self.bars.clear()
            self._read_at.clear()
            self._decided.clear()
            self._last_decided.clear()
            self._exits_waiting.clear()
            self.leading = True

    def step_down(self) -> None:
        """Another pod may decide the candles from now on: the candles in hand go back to the
        queue, and one being decided sends nothing more (`_still_leading`)."""
        self.leading = False

    def _still_leading(self) -> None:
        """Before each signal is sent (each attempt): a pod that stepped down meanwhile hands the
        candle back instead, or another pod's signals of later candles could come before it."""
        if not self.leading:
            raise Requeue("this pod no longer decides the candles")

    def bind(self, runtime: Runtime) -> None:
        """Use the runtime's connections and metrics registry (once the app is built)."""
        self.runtime = runtime
        self._metrics = LiveMetrics(runtime.metrics)

    @property
    def metrics(self) -> LiveMetrics:
        assert self._metrics is not None, "bind the trader to a runtime first"
        return self._metrics

    async def _active_set(self) -> list[tuple[ActiveStrategy, Strategy]]:
        assert self.runtime is not None
        if time.monotonic() - self._loaded_at >= ACTIVE_REFRESH:
            rows = await active_strategies(self.runtime.pool)
            self._active = [(r, rule) for r in rows if (rule := self._rule_of(r)) is not None]
            self._loaded_at = time.monotonic()
            ids = {r.id for r in rows}
            self._decided &= ids  # one retired, then activated, starts anew
            self._exits_waiting = {i: t for i, t in self._exits_waiting.items() if i in ids}
        return self._active

    def _rule_of(self, active: ActiveStrategy) -> Strategy | None:
        """The strategy's rule, None when its stored parameters no longer make one (stored by
        an older release, or edited by hand): it signals nothing, and the others trade on."""
        try:
            return PARSE_STRATEGY.validate_python(active.parameters.get("strategy"))
        except ValidationError as error:
            if active.id not in self._unreadable:
                self._unreadable.add(active.id)
                logger.error("strategy %d is active but its parameters make no rule this "
                             "release knows (%s): it signals nothing, not even its exit; "
                             "retire it (its closing sell is then sent), or activate another",
                             active.id, "; ".join(
                                 f"{'.'.join(map(str, e['loc'])) or 'strategy'}: {e['msg']}"
                                 for e in error.errors(include_url=False)))  # fmt: skip
            return None

    def refresh(self) -> None:
        """Read the active set again on the next candle (after a run activated others)."""
        self._loaded_at = float("-inf")

    async def _stale(self, symbol: str, bars: SymbolBars, minute: int) -> bool:
        """Whether the bars must be read again before deciding `minute`: none yet, or a gap
        before it (a pod taking over from another, a restart or an outage skips candles), or
        recent minutes missing from them that PostgreSQL holds now (a backfill stores a gap's
        candles without publishing them), counted again every HOLES_REREAD_SECONDS: a hole the
        exchange never fills costs a count of the recent minutes, not a read of every bar."""
        assert self.runtime is not None
        if not bars.times or minute > bars.times[-1] + 1:
            return True
        due = time.monotonic() - self._read_at.get(symbol, float("-inf")) >= HOLES_REREAD_SECONDS
        if not (due and bars.holes_within(CATCH_UP_BARS)):
            return False
        first, held = bars.latest(CATCH_UP_BARS)
        span = (minute_time(first), minute_time(bars.times[-1]))
        stored = await bars_stored(self.runtime.pool, symbol, *span)
        self._read_at[symbol] = time.monotonic()  # counted: the next count is due from now
        return stored > held

    async def _reload(self, symbol: str) -> SymbolBars:
        """The symbol's recent bars as PostgreSQL has them."""
        assert self.runtime is not None
        self._read_at[symbol] = time.monotonic()
        bars = SymbolBars(self.window)
        for opened, open_, close in await recent_bars(self.runtime.pool, symbol, self.window):
            bars.append(to_millis(opened) // 60_000, open_, close)
        self.bars[symbol] = bars
        return bars

    async def _bars_for(self, symbol: str, minute: int) -> tuple[SymbolBars, bool]:
        """The symbol's bars to decide `minute` on, and whether they were read again for it."""
        bars = self.bars.get(symbol)
        if bars is not None:
            check = partial(self._stale, symbol, bars, minute)
            if not await retry_transient(check, f"counting the bars of {symbol}"):
                return bars, False
        reading = partial(self._reload, symbol)
        return await retry_transient(reading, f"reading the bars of {symbol}"), True

    async def handle(self, payload: dict[str, Any]) -> None:
        """One candle message (`candle.<interval>.<SYMBOL>`); a malformed one raises, so the
        consumer dead-letters it."""
        async with self._lock:
            self._still_leading()
            await self._handle(payload)

    async def _handle(self, payload: dict[str, Any]) -> None:
        kline = kline_from_message(payload)
        if kline.interval != "1m" or not kline.closed:
            self.metrics.candles.labels("ignored").inc()
            return
        # the database away: the candle waits (unacknowledged), as for the broker
        active = await retry_transient(self._active_set, "reading the active strategies")
        strategies = [(a, s) for a, s in active if a.symbol == kline.symbol]
        if not strategies:
            self.metrics.candles.labels("ignored").inc()  # bars are read when one trades it
            return
        minute = to_millis(kline.open_time) // 60_000
        if minute <= self._last_decided.get(kline.symbol, -1):
            self.metrics.candles.labels("duplicate").inc()
            return
        bars, reread = await self._bars_for(kline.symbol, minute)
        if bars.times and minute < bars.times[-1]:
            self.metrics.candles.labels("late").inc()  # newer candles are stored already
            return
        # a bar read with the others (stored before its message came) is decided as one read
        read_with_it = not bars.append(minute, float(kline.open), float(kline.close))
        self.metrics.candles.labels("used").inc()
        try:
            await self._decide(bars, strategies, (kline.close, minute),
                               catch_up=reread or read_with_it)  # fmt: skip
        except BaseException:
            # the candle goes back undecided (redelivered, or to the dead letters): its bar is
            # forgotten, so a redelivery decides it again instead of taking it for a duplicate
            # (the signal ids are the same, so a signal sent before the failure counts once)
            self.bars.pop(kline.symbol, None)
            raise
        self._last_decided[kline.symbol] = minute

    async def _decide(
        self,
        bars: SymbolBars,
        strategies: list[tuple[ActiveStrategy, Strategy]],
        candle: tuple[Decimal, int],
        *,
        catch_up: bool,
    ) -> None:
        """Decide the strategies on the bars up to the candle's minute; publish each buy or
        sell at its close, waiting out a broker outage (the candle stays unacknowledged
        meanwhile), unless the strategy was retired meanwhile. With `catch_up` (the bars were
        read again), for a strategy this pod decides for the first time, and for an exit
        waiting for its buy to fill, a rule that changed on candles this pod did not see (or
        whose exit found nothing held then) is signalled too."""
        assert self.runtime is not None
        if len(bars.closes) < 2:
            return
        price, minute = candle
        decisions = await asyncio.to_thread(
            latest_decisions,
            list(bars.opens),
            list(bars.closes),
            [strategy for _, strategy in strategies],
        )
        signals: list[tuple[ActiveStrategy, Side, int | str]] = [
            (strategies[d.index][0], d.side, minute) for d in decisions if d.side
        ]
        unchanged = [
            d for d in decisions
            if not d.side and (catch_up or strategies[d.index][0].id not in self._decided
                               or self._exit_waits(strategies[d.index][0].id))
        ]  # fmt: skip
        missed = partial(self._missed, bars, strategies, unchanged)
        signals += await retry_transient(missed, "reading the strategies' latest signals")
        self._decided.update(active.id for active, _ in strategies)
        for active, side, moment in signals:
            await retry_transient(
                partial(self._publish, active, side, price, moment),
                f"publishing strategy {active.id}'s signal",
            )

    async def _hold_exit(self, active: ActiveStrategy, price: Decimal) -> None:
        """An exit that finds nothing to sell: it waits for a buy that may still fill (not
        filled yet, or not decided yet) or an approved sell that may still become an order
        (refused, it leaves the coins to sell), and is let go once neither may."""
        assert self.runtime is not None
        pool, env = self.runtime.pool, self.environment
        if await buy_may_still_fill(pool, active.id, active.symbol, env) or await sell_in_flight(
            pool, active.id, active.symbol, env
        ):
            if active.id not in self._exits_waiting:
                logger.info("strategy %d: no sell at %s: nothing to sell yet (a buy may still "
                            "fill, or a sell approved before is not an order yet); its exit is "
                            "looked at again at each candle until that settles", active.id,
                            price)  # fmt: skip
                self._exits_waiting[active.id] = time.monotonic() + EXIT_WAIT_SECONDS
        elif self._exits_waiting.pop(active.id, None) is None:
            logger.info("strategy %d: no sell at %s: it holds nothing", active.id, price)
        else:
            logger.info("strategy %d: what its exit waited for settled, and nothing is left to "
                        "sell: its exit waits no more", active.id)  # fmt: skip

    def _exit_waits(self, strategy_id: int) -> bool:
        """Whether the strategy's exit found nothing held less than EXIT_WAIT_SECONDS ago."""
        until = self._exits_waiting.get(strategy_id)
        if until is not None and time.monotonic() >= until:
            del self._exits_waiting[strategy_id]
            logger.info("strategy %d: its exit found nothing held for %.0fs: no longer waited "
                        "for", strategy_id, EXIT_WAIT_SECONDS)  # fmt: skip
            return False
        return until is not None

    async def _missed(
        self,
        bars: SymbolBars,
        strategies: list[tuple[ActiveStrategy, Strategy]],
        unchanged: list[Decision],
    ) -> list[tuple[ActiveStrategy, Side, int | str]]:
        """The signals of rules that changed on candles this pod did not see, or whose exit
        found nothing held then: the rule wants the other way than the strategy's latest decided
        signal (or is long, and it never signalled). A strategy whose rule's own latest signal
        is a buy that it holds, or that may still fill, is in, though a sell the sweep tried
        again came after it: a long rule buys nothing more, and one out sells. Each has the id
        the candle it changed on would have given it, so a pod that saw that candle and sends it
        meanwhile sends the same signal; a change older than CATCH_UP_BARS has an id made from
        the latest signal's."""
        assert self.runtime is not None
        if not unchanged:
            return []
        behind: list[tuple[ActiveStrategy, Strategy, Side, str | None]] = []
        for decision in unchanged:
            active, rule = strategies[decision.index]
            wanted: Side = "buy" if decision.long else "sell"
            if wanted == "buy" and not quoted_in(active.symbol, self.quote_asset):
                continue  # it sends no buy (`_skip_unquoted`): nothing to catch up with
            last = await last_signal(self.runtime.pool, active.id, active.symbol, self.environment)
            came_last = last[0] if last else "sell"
            # a sell the sweep tried again, decided after the rule's buy, is not the rule's
            # exit: that buy is held (or may still fill) whichever side came last
            in_by_rule = came_last == "sell" and await self._in_by_rule(active)
            if (came_last != wanted) != in_by_rule:
                behind.append((active, rule, wanted, last[1] if last else None))
        if not behind:
            return []
        rules = [rule for _, rule, _, _ in behind]
        changed = await asyncio.to_thread(
            latest_changes, list(bars.opens), list(bars.closes), rules, CATCH_UP_BARS
        )
        found: list[tuple[ActiveStrategy, Side, int | str]] = []
        pool = self.runtime.pool
        for (active, _, wanted, last_id), index in zip(behind, changed, strict=True):
            moment: int | str = after(last_id, self.environment)
            if index is not None:  # the candle's own id, unless decided already (then it
                # bought or sold before a later signal went the other way: reactivated)
                candle_id = signal_id(active.id, active.symbol, bars.times[index], wanted)
                if not await was_decided(pool, candle_id):
                    moment = bars.times[index]
            logger.info(
                "strategy %d: its rule wants a %s of %s since candle %s, the other way from its "
                "latest decided signal: signalled now", active.id, wanted, active.symbol, moment,
            )  # fmt: skip
            found.append((active, wanted, moment))
        return found

    async def _in_by_rule(self, active: ActiveStrategy) -> bool:
        assert self.runtime is not None
        return await rule_is_in(self.runtime.pool, active.id, active.symbol, self.environment)

    async def _quantity(self, active: ActiveStrategy, side: Side, price: Decimal) -> Decimal:
        """A buy: the notional at `price`; a sell: what the strategy holds (`holdings`)."""
        assert self.runtime is not None
        if side == "sell":
            pool = self.runtime.pool
            return await held_quantity(pool, active.id, active.symbol, self.environment)
        return buy_quantity(self.notional, price)

    def _skip_unquoted(self, active: ActiveStrategy) -> None:
        """A strategy activated on a cross pair (before QUOTE_ASSET was checked at generation
        and activation) sends no buy the executor would reject; its sells still unwind what it
        holds."""
        if active.id not in self._unquoted:
            self._unquoted.add(active.id)
            logger.warning("strategy %d trades %s, which is not quoted in %s (QUOTE_ASSET): its "
                           "buys are not sent, its sells are; retire it, or a generation run "
                           "that finds a new active set will", active.id, active.symbol,
                           self.quote_asset)  # fmt: skip

    async def _publish(
        self, active: ActiveStrategy, side: Side, price: Decimal, moment: int | str
    ) -> None:
        assert self.runtime is not None
        self._still_leading()  # checked again on each retry, as is the strategy's status
        if not await is_active(self.runtime.pool, active.id):
            logger.info("strategy %d was retired meanwhile: its %s is not sent", active.id, side)
            self.refresh()
            return
        if side == "buy" and not quoted_in(active.symbol, self.quote_asset):
            self._skip_unquoted(active)
            return
        quantity = await self._quantity(active, side, price)
        if quantity <= 0:
            if side == "sell":
                await self._hold_exit(active, price)
            else:
                logger.warning("strategy %d: no buy at %s: STRATEGY_SIGNAL_NOTIONAL buys "
                               "nothing at this price", active.id, price)  # fmt: skip
            return
        signal = Signal(
            signal_id=signal_id(active.id, active.symbol, moment, side),
            strategy_id=str(active.id),
            symbol=active.symbol,
            side=side,
            quantity=quantity,
            price=price,
            strength=Decimal(1),
        )
        await publish_json(
            self.runtime.channel, SIGNALS.name, f"signal.{active.symbol}", signal.to_json()
        )
        self._exits_waiting.pop(active.id, None)  # sold, or in again: the exit is done with
        self.metrics.signals.labels(side).inc()
        logger.info(
            "strategy %d signals %s %s %s at %s", active.id, side, quantity, active.symbol, price
        )
