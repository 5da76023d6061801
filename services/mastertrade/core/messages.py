"""The messages MasterTrade's trading loop passes on RabbitMQ, as pydantic models.

Every service that publishes or consumes a trading message builds it from here, so one
definition says what a signal, an approved order, an order event and an alert event carry.
Amounts are `Decimal` and travel as JSON strings ("0.015", never 0.015): a float would round
them. Every amount passes `mastertrade.core.amounts.check_finite_amount` (finite, |x| <= 1e15);
NaN and Infinity are refused with a message that names the field. Routing keys:

| exchange                | routing key                  | model           |
|-------------------------|------------------------------|-----------------|
| mastertrade.signals     | `signal.<SYMBOL>`            | `Signal`        |
| mastertrade.orders      | `order.approved`             | `ApprovedOrder` |
| mastertrade.orders      | `order.<status>` (filled, rejected, cancelled, ...) | `OrderEvent` |
| mastertrade.orders      | `risk.decision`              | `RiskDecisionEvent` |
| mastertrade.alerts      | `alert.<kind>`               | `AlertEvent`    |
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from mastertrade.core.amounts import check_finite_amount

SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{2,20}")
"""A symbol, matched whole (`fullmatch`: `$` would let a trailing newline through)."""


def check_amount(raw: Any) -> Any:
    """A finite amount within the platform's bound, or a ValueError saying what to send
    instead; runs before the bounds (gt/ge) so NaN and Infinity get this message, not a
    comparison's."""
    try:
        value = Decimal(str(raw)) if isinstance(raw, float | int | str) else raw
    except InvalidOperation:
        return raw  # not a number at all: pydantic's own error says so
    if not isinstance(value, Decimal):
        return raw
    return check_finite_amount(value)


def check_symbol(value: str) -> str:
    """An exchange symbol such as BTCUSDT (upper case letters and digits)."""
    symbol = value.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(f"{value!r} is not a symbol: use letters and digits, e.g. BTCUSDT")
    return symbol


def quoted_in(symbol: str, asset: str) -> bool:
    """Does `symbol` trade a coin against `asset` (BTCUSDT against USDT; ETHBTC does not)?"""
    return len(symbol) > len(asset) and symbol.endswith(asset)


def not_quoted_reason(symbol: str, side: str, asset: str) -> str | None:
    """Why a `side` order for `symbol` cannot be booked in an account kept in `asset`; None when
    it can. The books hold cash in one asset and value every position in it, so no buy of a
    symbol quoted in another; a sell may unwind what an older version bought."""
    if side != "buy" or quoted_in(symbol, asset):
        return None
    return (
        f"{symbol} is not quoted in {asset} (QUOTE_ASSET), the asset the account's cash and "
        f"positions are kept in: only {asset} pairs can be bought"
    )


def check_storable(text: str) -> str:
    """`text` as PostgreSQL can store it, or ValueError saying what is in the way."""
    if "\x00" in text:
        raise ValueError("contains a NUL character (\\u0000), which no alert can store: remove it")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError(
            "contains a lone surrogate (\\ud800-\\udfff), which is not text: send UTF-8"
        ) from None
    return text


StorableText = Annotated[str, AfterValidator(check_storable)]
"""Text an alert stores: refused when it comes in, not when the database refuses it (a
consumer's message would be dead-lettered, an API call answered 500)."""

Amount = Annotated[
    Decimal,
    BeforeValidator(check_amount),
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
]
PositiveAmount = Annotated[Amount, Field(gt=0)]
Symbol = Annotated[str, AfterValidator(check_symbol)]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
Environment = Literal["paper", "live"]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


def utc_now() -> datetime:
    return datetime.now(UTC)


APPROVAL_LIFETIME_SECONDS = 600.0
"""How long an approved order may wait for the executor. The risk manager checked it against
the equity, the positions and the price of the moment it approved it; one that waited longer (an
executor away, a message replayed by hand from the dead letters) is rejected, never sent or
filled, and its strategy's next signal is decided afresh."""


def outlived(made: datetime, now: datetime, lifetime: float) -> float | None:
    """How many seconds before `now` `made` is (negative: after it), when more than `lifetime`
    either way; None when within it. A time further ahead of `now` than the lifetime is refused
    as one too old is: it would keep what it dates alive for as long again."""
    age = (now - made).total_seconds()
    return age if abs(age) > lifetime else None


def stale_approval(approved_at: datetime | None, now: datetime) -> str | None:
    """Why an order approved at `approved_at` may no longer be executed at `now`, if so (None
    for an order recorded before approvals carried their time); see `outlived`."""
    if approved_at is None:
        return None
    if (age := outlived(approved_at, now, APPROVAL_LIFETIME_SECONDS)) is None:
        return None
    if age < 0:
        return (f"approved_at {approved_at.isoformat()} is {-age:.0f} s ahead of this clock: "
                "the risk manager's and the executor's clocks disagree (check their NTP), or "
                "the message was edited")  # fmt: skip
    return (f"approved {age:.0f} s ago ({approved_at.isoformat()}), and an "
            f"approval holds for {APPROVAL_LIFETIME_SECONDS:.0f} s: the risk limits were checked "
            "against the equity and prices of then; the strategy's next signal is decided "
            "afresh")  # fmt: skip


SIGNAL_LIFETIME_SECONDS = 600.0
"""How old a signal may be when the risk manager decides it. Its strategy saw the market of the
moment it made it; one decided later (a risk manager away or behind, a message replayed by hand
from the dead letters) is rejected, and its strategy's next signal is decided afresh (an exit:
the strategy service tries it again, see strategy/closing.py). Shorter than the time a
strategy's exit waits for its buy (strategy/live.py, EXIT_WAIT_SECONDS), so a buy decided after
its exit gave up waiting is never approved, to be held with no exit to come."""


def stale_signal(created_at: datetime, now: datetime) -> str | None:
    """Why a signal made at `created_at` may no longer be decided at `now`, if so; see
    `outlived`."""
    if (age := outlived(created_at, now, SIGNAL_LIFETIME_SECONDS)) is None:
        return None
    if age < 0:
        return (f"signal made at {created_at.isoformat()}, {-age:.0f} s ahead of this clock: the "
                "strategy's and the risk manager's clocks disagree (check their NTP), or the "
                "message was edited")  # fmt: skip
    return (f"signal made {age:.0f} s ago ({created_at.isoformat()}), and a signal holds for "
            f"{SIGNAL_LIFETIME_SECONDS:.0f} s: the market it was made on has moved; the "
            "strategy's next signal is decided afresh")  # fmt: skip


class Message(BaseModel):
    """Base of the messages: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict to publish (Decimals as strings)."""
        return self.model_dump(mode="json")


class Signal(Message):
    """A strategy's wish to trade `quantity` of `symbol` at about `price` (the price it saw;
    the limit price for a limit order). Published on `mastertrade.signals` as `signal.<SYMBOL>`."""

    signal_id: Identifier
    strategy_id: str | None = None
    symbol: Symbol
    side: Side
    order_type: OrderType = "market"
    quantity: PositiveAmount
    price: PositiveAmount
    created_at: AwareDatetime = Field(default_factory=utc_now)  # aware: its age is checked
    # how sure the strategy is, 0 to 1 (strategy_service sends it; optional for other senders)
    strength: Annotated[Amount, Field(ge=0, le=1)] | None = None


class ApprovedOrder(Message):
    """An order the risk manager let through (possibly resized); `order.approved`. A limit
    order names its limit price; `sized_price` is the price the risk limits were checked at
    (the signal's), which a market buy may not fill far above (the executor's
    MAX_PRICE_DEVIATION_PCT). One the executor takes more than APPROVAL_LIFETIME_SECONDS after
    `approved_at` is rejected (`stale_approval`). `environment` is the TRADING_ENVIRONMENT it
    was approved under, against that environment's books: an executor trading another refuses
    it; None (an approval from a risk manager of before the field) only a paper one takes."""

    client_order_id: Identifier
    signal_id: Identifier
    symbol: Symbol
    side: Side
    order_type: OrderType
    quantity: PositiveAmount
    limit_price: PositiveAmount | None = None
    sized_price: PositiveAmount | None = None
    reduce_only: bool = False
    approved_at: AwareDatetime = Field(default_factory=utc_now)  # APPROVAL_LIFETIME_SECONDS
    environment: Environment | None = None

    @property
    def recorded_price(self) -> Decimal | None:
        """The order row's `price`: the limit, or for a market order the price it was sized
        at (the live executor caps a market buy at a ceiling above it, domain/price_guard.py)."""
        return self.limit_price if self.order_type == "limit" else self.sized_price

    @model_validator(mode="after")
    def _limit_has_a_price(self) -> ApprovedOrder:
        if self.order_type == "limit" and self.limit_price is None:
            raise ValueError("a limit order needs a limit_price (or send order_type 'market')")
        return self


class RiskDecisionEvent(Message):
    """What the risk manager decided about a signal, and why; `risk.decision`."""

    signal_id: Identifier
    outcome: Literal["approved", "resized", "rejected"]
    symbol: Symbol
    side: Side
    requested_quantity: PositiveAmount
    approved_quantity: Amount
    reasons: list[str]
    client_order_id: Identifier | None = None


class OrderEvent(Message):
    """What became of an order at the executor; `order.<status>`."""

    client_order_id: Identifier
    symbol: Symbol
    side: Side
    status: Literal["submitted", "filled", "rejected", "cancelled"]
    environment: Literal["paper", "live"]
    quantity: PositiveAmount
    filled_quantity: Amount = Decimal(0)
    average_price: Amount | None = None
    fee: Amount = Decimal(0)
    reason: str | None = None
    # aware only: asyncpg would store a naive time as this host's local time; refused instead
    occurred_at: AwareDatetime = Field(default_factory=utc_now)


class AlertEvent(Message):
    """Something people should hear about; `alert.<kind>` on `mastertrade.alerts`.

    `dedup_key` makes repeats within the alert system's dedup window one alert; a key that
    names one event (an order's status, a breaker trip, ...: alerts/domain/dedup.py) makes
    every copy of it one alert, however late it comes."""

    kind: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")]
    severity: Literal["info", "warning", "critical"] = "info"
    title: Annotated[StorableText, Field(min_length=1, max_length=200)]
    message: Annotated[StorableText, Field(max_length=4000)] = ""
    dedup_key: Annotated[StorableText, Field(max_length=200)] | None = None
    source: StorableText | None = None
    # aware only: asyncpg would store a naive time as this host's local time; refused instead
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
