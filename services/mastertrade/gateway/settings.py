"""Settings of api_gateway: the URLs of the services it fronts (set by the chart and `up`)."""

from __future__ import annotations

from pydantic import Field

from mastertrade.core.settings import ServiceSettings

URL_HELP = "an http:// URL of the service, e.g. http://market-data-service:8000"


class GatewaySettings(ServiceSettings):
    """Each *_URL is optional: a service without one is simply not fronted."""

    market_data_service_url: str | None = Field(default=None, description=URL_HELP)
    strategy_service_url: str | None = Field(default=None, description=URL_HELP)
    order_executor_url: str | None = Field(default=None, description=URL_HELP)
    risk_manager_url: str | None = Field(default=None, description=URL_HELP)
    alert_system_url: str | None = Field(default=None, description=URL_HELP)
    arbitrage_service_url: str | None = Field(default=None, description=URL_HELP)

    def upstreams(self) -> dict[str, str]:
        """Service name -> URL for every configured upstream."""
        found = {
            "market_data_service": self.market_data_service_url,
            "strategy_service": self.strategy_service_url,
            "order_executor": self.order_executor_url,
            "risk_manager": self.risk_manager_url,
            "alert_system": self.alert_system_url,
            "arbitrage_service": self.arbitrage_service_url,
        }
        return {name: url for name, url in found.items() if url}
