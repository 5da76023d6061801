"""Who may start a generation on demand: a bearer token whose SHA-256 is
STRATEGY_ADMIN_API_KEY_SHA256, checked exactly as the risk manager checks its admin token.

Through the API gateway a POST already needs a key with scope trade (the gateway does not
forward that key), so the call reaches this service only from a trade or admin caller; the
token here guards the service's own port as well.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from mastertrade.risk.api.auth import check_token
from mastertrade.strategy.settings import StrategySettings


async def require_admin(request: Request) -> str:
    """The caller's name for the logs, or 401/403 (503 while no token is configured)."""
    settings: StrategySettings = request.app.state.settings
    secret = settings.strategy_admin_api_key_sha256
    if secret is None:
        raise HTTPException(
            503, "generation on demand is disabled: set STRATEGY_ADMIN_API_KEY_SHA256"
        )
    return check_token(request.headers.get("authorization"), secret.get_secret_value())


AdminDep = Annotated[str, Depends(require_admin)]
