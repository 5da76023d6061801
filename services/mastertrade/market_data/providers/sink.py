"""Where observations go: upserted into `external_metrics`, then published on the market data
exchange as `<kind>.<source>.<subject>` (persistent JSON, each publish confirmed).

Storing comes first, as for candles: a consumer reacting to a message finds the row. The poll's
cursors move once the rows are stored (a store that fails polls the same again; the upsert makes
that harmless); rows whose publish fails are kept by the poller and published before its next
poll, never polled and counted again under a new time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import aio_pika

from mastertrade.market_data.domain.observations import Observation, routing_key, to_message
from mastertrade.market_data.writer import Connections
from mastertrade_model.topology import MARKET_DATA

UPSERT = """
INSERT INTO external_metrics (source, kind, subject, metric, observed_at, value)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (source, subject, metric, observed_at) DO UPDATE
SET value = EXCLUDED.value, collected_at = now()
WHERE external_metrics.value IS DISTINCT FROM EXCLUDED.value
"""


class ObservationWriter:
    """Stores and publishes a poll's observations."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    async def store(self, rows: Sequence[Observation]) -> int:
        """Upsert the rows into `external_metrics`; how many."""
        if not rows:
            return 0
        pool = self.connections.pool()
        await pool.executemany(UPSERT, [
            (r.source, r.kind, r.subject, r.metric, r.observed_at, r.value) for r in rows
        ])  # fmt: skip
        return len(rows)

    async def publish(self, rows: Sequence[Observation]) -> None:
        """Publish the stored rows on the market data exchange, each confirmed."""
        if not rows:
            return
        exchange = await self.connections.channel().get_exchange(MARKET_DATA.name, ensure=False)
        await asyncio.gather(*(
            exchange.publish(
                aio_pika.Message(json.dumps(to_message(row)).encode(),
                                 content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=routing_key(row),
                mandatory=False,  # nobody may be bound to sentiment.# yet: no error
            )
            for row in rows
        ))  # fmt: skip
