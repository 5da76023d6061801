"""The on-chain collectors: Glassnode metrics and Moralis ERC-20 transfers.

- Glassnode: `GET /v1/metrics/<category>/<metric>?a=<asset>&i=<resolution>&s=<since>` with the
  key in the `X-Api-Key` header; `s` is the last point already stored (30 days back at first).
- Moralis: `GET /api/v2.2/erc20/<address>/transfers?chain=<chain>&limit=100&order=DESC` with
  `X-API-Key`; newest first, followed through `cursor` until a page reaches transfers already
  counted (the first poll counts one page).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from mastertrade.market_data.domain.observations import Observation
from mastertrade.market_data.domain.onchain import (
    Transfer,
    parse_glassnode_series,
    parse_moralis_transfers,
    summarize_transfers,
)
from mastertrade.market_data.providers.batch import Batch
from mastertrade.market_data.providers.http import ProviderHttp

FIRST_LOOKBACK = timedelta(days=30)


class Glassnode:
    """New points of each (asset, metric) since the last one stored."""

    name = "glassnode"

    def __init__(
        self, http: ProviderHttp, key: str, assets: Sequence[str], metrics: Sequence[str],
        resolution: str,
    ) -> None:  # fmt: skip
        self.http = http
        self.headers = {"X-Api-Key": key}
        self.assets = tuple(assets)
        self.metrics = tuple(metrics)
        self.resolution = resolution
        self.since: dict[tuple[str, str], datetime] = {}

    async def poll(self, at: datetime) -> Batch:
        rows: list[Observation] = []
        latest: dict[tuple[str, str], datetime] = {}
        for asset in self.assets:
            for metric in self.metrics:
                start = self.since.get((asset, metric), at - FIRST_LOOKBACK)
                params: dict[str, str | int] = {
                    "a": asset, "i": self.resolution, "s": int(start.timestamp()),
                }  # fmt: skip
                body = await self.http.request(
                    "GET", f"/v1/metrics/{metric}", params=params, headers=self.headers
                )
                points = parse_glassnode_series(body, asset, metric)
                rows += points
                if points:
                    latest[(asset, metric)] = max(point.observed_at for point in points)
        return Batch(rows, lambda: self.since.update(latest))


class Moralis:
    """New transfers of each ERC-20 token since the last poll."""

    name = "moralis"

    def __init__(
        self, http: ProviderHttp, key: str, tokens: Sequence[str], *, chain: str,
        whale: Decimal, max_pages: int = 5,
    ) -> None:  # fmt: skip
        self.http = http
        self.headers = {"X-API-Key": key}
        self.tokens = tuple(token.lower() for token in tokens)
        self.chain = chain
        self.whale = whale
        self.max_pages = max_pages
        self.seen: dict[str, tuple[int, int]] = {}

    async def _new_transfers(self, token: str) -> list[Transfer]:
        seen = self.seen.get(token)
        params: dict[str, str | int] = {"chain": self.chain, "limit": 100, "order": "DESC"}
        found: list[Transfer] = []
        for _ in range(self.max_pages):
            page = parse_moralis_transfers(await self.http.request(
                "GET", f"/api/v2.2/erc20/{token}/transfers", params=params, headers=self.headers
            ))  # fmt: skip
            fresh = [t for t in page.transfers if seen is None or t.key > seen]
            found += fresh
            if seen is None or len(fresh) < len(page.transfers) or page.cursor is None:
                break
            params["cursor"] = page.cursor
        return found

    async def poll(self, at: datetime) -> Batch:
        rows: list[Observation] = []
        latest: dict[str, tuple[int, int]] = {}
        for token in self.tokens:
            transfers = await self._new_transfers(token)
            rows += summarize_transfers(token, at, transfers, self.whale)
            if transfers:
                latest[token] = max(t.key for t in transfers)
        return Batch(rows, lambda: self.seen.update(latest))
