"""Settings of api_gateway: the URLs of the services it fronts, its keys, limits and timeouts.

The routable services are the catalog's (`mastertrade.catalog.SERVICES`, all but the gateway):
each has a `<NAME>_URL` setting (MARKET_DATA_SERVICE_URL, ORDER_EXECUTOR_URL,
DATA_ACCESS_API_URL, ...) generated here from the catalog, never listed by hand; a service
without a URL is answered 503 "not configured".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, create_model, field_validator

from mastertrade.catalog import SERVICES
from mastertrade.core.service import ServiceSpec
from mastertrade.core.settings import ServiceSettings
from mastertrade.gateway.keys import ApiKey, parse_entries

URL_HELP = "an http:// URL of the service, e.g. http://market-data-service:8000"
GATEWAY = "api_gateway"


def routable_services() -> tuple[ServiceSpec, ...]:
    """Every service of the catalog the gateway can route to."""
    return tuple(spec for spec in SERVICES if spec.name != GATEWAY)


def _url(value: str | None) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("expected a URL starting with http:// or https://")
    return value.rstrip("/") if value else None


_URL_FIELDS: dict[str, Any] = {
    f"{spec.name}_url": (str | None, Field(default=None, description=URL_HELP))
    for spec in routable_services()
}

if TYPE_CHECKING:
    _Urls = ServiceSettings
else:
    _Urls = create_model("_Urls", __base__=ServiceSettings, **_URL_FIELDS)


class GatewaySettings(_Urls):
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

    @field_validator(*_URL_FIELDS, mode="after", check_fields=False)
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return _url(value)

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

    def upstreams(self) -> dict[str, str]:
        """Service name -> URL for every configured upstream."""
        found = {spec.name: getattr(self, f"{spec.name}_url") for spec in routable_services()}
        return {name: url for name, url in found.items() if url}
