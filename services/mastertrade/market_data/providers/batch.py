"""What a collector's poll gives: observations, and how to move its cursors once they are stored.

The cursors (Twitter's since_id, Reddit's newest post time, Glassnode's last point, Moralis's
last transfer) move only after the batch is written, so a failed write is polled again rather
than lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mastertrade.market_data.domain.observations import Observation


@dataclass(frozen=True)
class Batch:
    rows: Sequence[Observation]
    commit: Callable[[], None]


class Provider(Protocol):
    """A sentiment or on-chain data provider, polled by a `Poller`."""

    name: str

    async def poll(self, at: datetime) -> Batch: ...
