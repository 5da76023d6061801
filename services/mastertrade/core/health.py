"""The seed's health JSON, derived from the state of a service's dependencies.

Shape (the seed's, exactly): `{"status": "healthy", "service": "market_data_service",
"version": "1.0.0", "uptime": 3600, "checks": {"database": "ok", "rabbitmq": "ok",
"redis": "ok"}}`. A check that fails reads "error", the status "unhealthy", and the answer is 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHECK_OK = "ok"
CHECK_ERROR = "error"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


def derive_health(
    service: str, version: str, uptime: float, checks: Mapping[str, bool]
) -> tuple[int, dict[str, Any]]:
    """HTTP status code and body of /health; every check listed is a required one."""
    healthy = all(checks.values())
    body: dict[str, Any] = {
        "status": HEALTHY if healthy else UNHEALTHY,
        "service": service,
        "version": version,
        "uptime": int(uptime),
        "checks": {name: CHECK_OK if up else CHECK_ERROR for name, up in checks.items()},
    }
    return (200 if healthy else 503), body
