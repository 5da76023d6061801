"""Who may start a generation on demand: a bearer token whose SHA-256 is
STRATEGY_ADMIN_API_KEY_SHA256 (see `mastertrade.core.admin_token`). The route sits under
`/api/v1/admin/`, so through the API gateway it needs a key with scope admin as well."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mastertrade.core.admin_token import check_token
from mastertrade.strategy.settings import StrategySettings


async def require_admin(request: Request) -> str:
    """The caller's name for the logs, or 401/403 (503 while no token is configured)."""
    settings: StrategySettings = request.app.state.settings
    return check_token(
        request.headers.get("authorization"),
        settings.strategy_admin_api_key_sha256,
        "STRATEGY_ADMIN_API_KEY_SHA256",
    )


AdminDep = Annotated[str, Depends(require_admin)]
