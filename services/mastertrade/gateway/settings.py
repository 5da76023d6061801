"""Settings of api_gateway: the services it fronts are the catalog's `serviceUrls` of the
api-gateway workload; their URLs (set by the chart and `mastertrade up`) arrive in the settings'
`upstreams`, read by `load_settings`."""

from __future__ import annotations

from mastertrade.core.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """A service without a URL is simply not fronted."""
