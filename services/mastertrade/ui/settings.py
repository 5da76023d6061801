"""Settings of monitoring_ui: it reads through API_GATEWAY_URL and DATA_ACCESS_API_URL, as in
the seed; the catalog's `serviceUrls` of the monitoring-ui workload names them, and their URLs
arrive in the settings' `upstreams`, read by `load_settings`. UI_* say how often it polls them,
how much it keeps, and the gateway key it reads with."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mastertrade.core.settings import ServiceSettings


class UiSettings(ServiceSettings):
    """Where the dashboard reads from (`upstreams`: service name -> URL) and how often."""

    ui_poll_seconds: float = Field(
        default=5.0,
        ge=0.2,
        le=300,
        description="seconds between two reads of the upstreams (each read is a handful of "
        "requests through the gateway, which rate-limits anonymous callers per address)",
    )
    ui_equity_points: int = Field(
        default=2000, ge=10, le=100_000, description="equity samples kept for the chart"
    )
    ui_rows: int = Field(
        default=20, ge=1, le=500, description="rows of orders, fills, alerts, strategies shown"
    )
    ui_gateway_api_key: SecretStr | None = Field(
        default=None,
        description="a gateway API key with scope read, sent with every read through the "
        "gateway (needed when the gateway has GATEWAY_REQUIRE_KEY_FOR_READS=true); from a Secret",
    )
