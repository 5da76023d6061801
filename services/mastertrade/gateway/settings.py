"""Settings of api_gateway: its keys, limits and timeouts.

The services it fronts are those the catalog's api-gateway entry names in `serviceUrls`; their URLs
(set by the chart and `mastertrade up`) arrive in the settings' `upstreams`, read by
`load_settings`. A catalog service without a URL is answered 503 "not configured".
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from mastertrade.catalog import SERVICES
from mastertrade.core.service import ServiceSpec
from mastertrade.core.settings import ServiceSettings
from mastertrade.gateway.keys import ApiKey, parse_entries

GATEWAY = "api_gateway"


def routable_services() -> tuple[ServiceSpec, ...]:
    """Every service of the catalog the gateway can route to."""
    return tuple(spec for spec in SERVICES if spec.name != GATEWAY)


class GatewaySettings(ServiceSettings):
    """URLs of the fronted services, and the gateway's own GATEWAY_* settings."""

    gateway_api_keys: SecretStr | None = Field(
        default=None,
        description="API keys as name:scope:secret entries separated by commas or newlines "
        "(scope read, trade or admin; secret a token or sha256:<hex>), from a Secret",
    )
    gateway_api_keys_file: Path | None = Field(
        default=None, description="a file of name:scope:secret lines, e.g. a mounted Secret"
    )
    gateway_require_key_for_reads: bool = Field(
        default=False, description="true: GET needs a key with scope read; false: reads are open"
    )
    gateway_rate_limit: int = Field(
        default=600, ge=1, le=1_000_000, description="requests per window per API key"
    )
    gateway_anonymous_rate_limit: int = Field(
        default=120, ge=1, le=1_000_000, description="requests per window per client address"
    )
    gateway_rate_window: int = Field(
        default=60, ge=1, le=3600, description="the rate limit window in seconds"
    )
    gateway_max_body_bytes: int = Field(
        default=1024 * 1024, ge=0, le=1024**3, description="largest request body forwarded"
    )
    gateway_upstream_timeout: float = Field(
        default=10.0, gt=0, le=600, description="seconds to wait for an upstream's answer"
    )
    gateway_max_connections: int = Field(
        default=100, ge=1, le=10_000, description="pooled connections to the upstreams in all"
    )

    @field_validator("gateway_api_keys")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_entries(value.get_secret_value())
        return value

    @field_validator("gateway_api_keys_file")
    @classmethod
    def _keys_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                text = value.read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"cannot read the file: {error.strerror}") from None
            parse_entries(text)
        return value

    def api_keys(self) -> tuple[ApiKey, ...]:
        """Every key from GATEWAY_API_KEYS and GATEWAY_API_KEYS_FILE."""
        text = self.gateway_api_keys.get_secret_value() if self.gateway_api_keys else ""
        if self.gateway_api_keys_file is not None:
            text += "\n" + self.gateway_api_keys_file.read_text(encoding="utf-8")
        return parse_entries(text)
