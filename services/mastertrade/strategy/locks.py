"""The service's advisory locks: the active set's, and the live decisions' leadership.

The active set's lock: one change of it at a time, across every pod of the service.

A generation run replacing the set (`store.finish_run`), an admin's activation
(`active_set.activate_strategy`) and the closing sweep (`closing.sweep_orphans`) each take it,
in their transaction, before they read or lock any strategy row: two concurrent activations
cannot both take the last free place, an activation cannot interleave with a run replacing the
set, and the sweep never sells a strategy activated while it looked. Taken first by all, it
also keeps their row locks from ever waiting on each other in a cycle.

The live decisions' lock (a session lock, `core/leadership.py`): one pod at a time takes the
candles and decides the active strategies on them, in the order the market published them; the
others compute generation shards and serve the API, and one takes over if it goes.
"""

from __future__ import annotations

from mastertrade.core.db import Connection

ACTIVATION_LOCK = 0x6D745F6163  # an arbitrary advisory lock key of this service
LIVE_DECISIONS_LOCK = 0x6D74_7374_6C69_7665  # "mtstlive": held by the pod deciding candles


async def lock_active_set(connection: Connection) -> None:
    """Wait for the active set's lock, held until the caller's transaction ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", ACTIVATION_LOCK)
