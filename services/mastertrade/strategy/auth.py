"""Who may start a generation on demand: a bearer token whose SHA-256 is
STRATEGY_ADMIN_API_KEY_SHA256, checked exactly as the risk manager checks its admin token.

Through the API gateway a POST already needs a gateway key with scope trade, sent as
`Authorization`; the gateway does not forward that header (nor any scope), so through it the
admin token goes in `X-Admin-Token`, which it forwards. Directly, either header works.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from mastertrade.risk.api.auth import check_token
from mastertrade.strategy.settings import StrategySettings

ADMIN_TOKEN_HEADER = "x-admin-token"


async def require_admin(request: Request) -> str:
    """The caller's name for the logs, or 401/403 (503 while no token is configured)."""
    settings: StrategySettings = request.app.state.settings
    secret = settings.strategy_admin_api_key_sha256
    if secret is None:
        raise HTTPException(
            503, "generation on demand is disabled: set STRATEGY_ADMIN_API_KEY_SHA256"
        )
    authorization = request.headers.get("authorization")
    forwarded = request.headers.get(ADMIN_TOKEN_HEADER)
    if forwarded and not authorization:
        authorization = f"Bearer {forwarded}"
    return check_token(authorization, secret.get_secret_value())


AdminDep = Annotated[str, Depends(require_admin)]
