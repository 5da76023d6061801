"""Settings of monitoring_ui: API_GATEWAY_URL and DATA_ACCESS_API_URL, as in the seed."""

from __future__ import annotations

from pydantic import Field, field_validator

from mastertrade.core.settings import ServiceSettings


class UiSettings(ServiceSettings):
    """Where the dashboard reads from."""

    api_gateway_url: str = Field(
        default="http://localhost:8080", description="an http:// URL, e.g. http://api-gateway:8080"
    )
    data_access_api_url: str = Field(
        default="http://localhost:8005",
        description="an http:// URL, e.g. http://data-access-api:8005",
    )

    @field_validator("api_gateway_url", "data_access_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("not an http:// or https:// URL")
        return value
