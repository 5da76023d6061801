"""The collectors the settings turn on: one `Poller` per provider whose key is set.

A provider without its key (Reddit needs both id and secret) is not built at all: it is off,
and /health and the `mastertrade_market_data_collector_enabled` gauge say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.providers.batch import Provider
from mastertrade.market_data.providers.chain import Glassnode, Moralis
from mastertrade.market_data.providers.http import ProviderHttp
from mastertrade.market_data.providers.poller import Poller
from mastertrade.market_data.providers.sink import ObservationWriter
from mastertrade.market_data.providers.social import LunarCrush, Reddit, Twitter
from mastertrade.market_data.settings import MarketDataSettings

PROVIDERS = ("twitter", "reddit", "lunarcrush", "glassnode", "moralis")


@dataclass
class Collectors:
    """The pollers that are on, and the HTTP clients to close at the end."""

    pollers: dict[str, Poller] = field(default_factory=dict)
    clients: list[ProviderHttp] = field(default_factory=list)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _secret(value: SecretStr | None) -> str:
    assert value is not None  # checked by configured_sources()
    return value.get_secret_value()


def build_providers(settings: MarketDataSettings, collectors: Collectors) -> list[Provider]:
    """Providers whose credentials are set, each with its own pooled HTTP client."""
    on = settings.configured_sources()
    s = settings

    def http(name: str, url: str) -> ProviderHttp:
        client = ProviderHttp(name, url, s.collector_timeout)
        collectors.clients.append(client)
        return client

    found: list[Provider] = []
    if on["twitter"]:
        found.append(Twitter(http("twitter", s.twitter_api_url), _secret(s.twitter_bearer_token),
                             s.sentiment_assets))  # fmt: skip
    if on["reddit"]:
        credentials = (_secret(s.reddit_client_id), _secret(s.reddit_client_secret))
        found.append(Reddit(http("reddit", s.reddit_auth_url), http("reddit", s.reddit_api_url),
                            credentials, s.reddit_subreddits))  # fmt: skip
    if on["lunarcrush"]:
        found.append(LunarCrush(http("lunarcrush", s.lunarcrush_api_url),
                                _secret(s.lunarcrush_api_key), s.sentiment_assets))  # fmt: skip
    if on["glassnode"]:
        found.append(Glassnode(http("glassnode", s.glassnode_api_url),
                               _secret(s.glassnode_api_key), s.sentiment_assets,
                               s.glassnode_metrics, s.glassnode_resolution))  # fmt: skip
    if on["moralis"]:
        found.append(Moralis(http("moralis", s.moralis_api_url), _secret(s.moralis_api_key),
                             s.moralis_tokens, chain=s.moralis_chain,
                             whale=s.moralis_whale_threshold))  # fmt: skip
    return found


def build_collectors(
    settings: MarketDataSettings, writer: ObservationWriter, metrics: MarketMetrics
) -> Collectors:
    """A poller for every provider that has its key."""
    collectors = Collectors()
    for provider in build_providers(settings, collectors):
        interval = (settings.onchain_poll_seconds if provider.name in ("glassnode", "moralis")
                    else settings.sentiment_poll_seconds)  # fmt: skip
        collectors.pollers[provider.name] = Poller(
            provider, writer, metrics, interval=interval,
            max_backoff=settings.collector_max_backoff,
        )  # fmt: skip
    return collectors
