"""On-chain metrics, pure: Glassnode's metric series and Moralis's ERC-20 transfers as observations.

Glassnode answers `[{"t": <unix seconds>, "v": <number>}, ...]`; each point is an observation of
the metric (its path, e.g. `addresses/active_count`) for the asset at `t`. Moralis answers a page
of transfers with raw integer values and the token's decimals; a poll's new transfers of a token
become `transfers` (count), `transfer_volume` (token units, exact), `largest_transfer` and
`whale_transfers` (at or above the configured threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from mastertrade.market_data.domain.events import MalformedEventError
from mastertrade.market_data.domain.observations import (
    Observation,
    epoch_seconds,
    iso_time,
    number,
    observation,
)

MAX_TOKEN_DECIMALS = 36
MAX_RAW_DIGITS = 80


def parse_glassnode_series(body: object, asset: str, metric: str) -> list[Observation]:
    """A Glassnode metric series; a point whose value is null (no data yet) is skipped."""
    if not isinstance(body, list):
        raise MalformedEventError(f"glassnode {metric}: expected a JSON array of points")
    found = []
    for point in body:
        if not isinstance(point, dict) or "t" not in point:
            raise MalformedEventError(f"glassnode {metric}: a point is not {{'t', 'v'}}")
        if point.get("v") is None:
            continue
        at = epoch_seconds(point["t"], f"glassnode {metric} t")
        found.append(observation("glassnode", asset, metric, at, point["v"]))
    return found


@dataclass(frozen=True, slots=True)
class Transfer:
    """One ERC-20 transfer: where it is in the chain, when, and how many tokens moved."""

    key: tuple[int, int]  # (block number, log index): the chain's own order
    at: datetime
    amount: Decimal


@dataclass(frozen=True, slots=True)
class TransferPage:
    transfers: list[Transfer]
    cursor: str | None


def _int(raw: object, name: str, digits: int = 20) -> int:
    text = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
    if not text.isdigit() or len(text) > digits:
        raise MalformedEventError(f"{name}: expected a non-negative integer, got {str(raw)[:40]!r}")
    return int(text)


def _transfer(raw: Any) -> Transfer:
    if not isinstance(raw, dict):
        raise MalformedEventError("moralis transfer: expected a JSON object")
    tx = str(raw.get("transaction_hash", "?"))[:80]
    decimals = _int(raw.get("token_decimals"), f"transfer {tx} token_decimals", 2)
    if decimals > MAX_TOKEN_DECIMALS:
        raise MalformedEventError(f"transfer {tx}: {decimals} token decimals is not a token")
    value = _int(raw.get("value"), f"transfer {tx} value", MAX_RAW_DIGITS)
    amount = number(Decimal(value).scaleb(-decimals), f"transfer {tx} amount")
    key = (_int(raw.get("block_number"), f"transfer {tx} block_number"),
           _int(raw.get("log_index", 0), f"transfer {tx} log_index"))  # fmt: skip
    return Transfer(key, iso_time(raw.get("block_timestamp"), f"transfer {tx} time"), amount)


def parse_moralis_transfers(body: object) -> TransferPage:
    """`GET /api/v2.2/erc20/<address>/transfers`: `{"cursor", "page_size", "result": [...]}`."""
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        raise MalformedEventError("moralis transfers: expected an object with a result array")
    cursor = body.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise MalformedEventError("moralis transfers: cursor is not a string")
    return TransferPage([_transfer(raw) for raw in body["result"]], cursor or None)


def summarize_transfers(
    token: str, at: datetime, transfers: Sequence[Transfer], whale: Decimal
) -> list[Observation]:
    """A poll's new transfers of `token` at `at`: count, volume, largest, whales."""
    volume = sum((t.amount for t in transfers), Decimal(0))
    largest = max((t.amount for t in transfers), default=Decimal(0))
    whales = sum(1 for t in transfers if t.amount >= whale)
    return [
        observation("moralis", token, "transfers", at, len(transfers)),
        observation("moralis", token, "transfer_volume", at, volume),
        observation("moralis", token, "largest_transfer", at, largest),
        observation("moralis", token, "whale_transfers", at, whales),
    ]
