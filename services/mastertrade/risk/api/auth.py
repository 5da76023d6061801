"""Admin authentication of the risk manager: a bearer token whose SHA-256 is
RISK_ADMIN_API_KEY_SHA256 (see `mastertrade.core.admin_token`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mastertrade.core.admin_token import check_token
from mastertrade.risk.settings import RiskSettings


async def require_admin(request: Request) -> str:
    settings: RiskSettings = request.app.state.settings
    return check_token(
        request.headers.get("authorization"),
        settings.risk_admin_api_key_sha256,
        "RISK_ADMIN_API_KEY_SHA256",
    )


AdminDep = Annotated[str, Depends(require_admin)]
