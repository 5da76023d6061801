"""Admin authentication of the alert system: the risk manager's admin token, a bearer token
whose SHA-256 is RISK_ADMIN_API_KEY_SHA256 (one setting, so an operator holds one token for
both; see `mastertrade.core.admin_token`, which compares in constant time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.admin_token import check_token


async def require_admin(request: Request) -> str:
    settings: AlertSettings = request.app.state.settings
    return check_token(
        request.headers.get("authorization"),
        settings.risk_admin_api_key_sha256,
        "RISK_ADMIN_API_KEY_SHA256",
    )


AdminDep = Annotated[str, Depends(require_admin)]
