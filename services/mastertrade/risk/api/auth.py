"""Admin authentication: a bearer token whose SHA-256 is RISK_ADMIN_API_KEY_SHA256.

Only the hash is configured, so the setting (a ConfigMap or Secret) never holds the token. The
API gateway's API keys with an admin scope will replace this; until then an operator makes a
token (`openssl rand -hex 32`), stores `printf %s TOKEN | sha256sum` in the setting, and calls
with `Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from mastertrade.risk.settings import RiskSettings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mastertrade-admin"'}


def check_token(authorization: str | None, expected_sha256: str | None) -> str:
    """The caller's name for the audit trail, or an HTTPException (401/403/503)."""
    if expected_sha256 is None:
        raise HTTPException(503, "admin calls are disabled: set RISK_ADMIN_API_KEY_SHA256")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send Authorization: Bearer <admin token>", headers=CHALLENGE)
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    if not hmac.compare_digest(digest, expected_sha256.strip().lower()):
        raise HTTPException(403, "this token is not the admin token", headers=CHALLENGE)
    return f"admin:{digest[:8]}"


async def require_admin(request: Request) -> str:
    settings: RiskSettings = request.app.state.settings
    secret = settings.risk_admin_api_key_sha256
    expected = secret.get_secret_value() if secret is not None else None
    return check_token(request.headers.get("authorization"), expected)


AdminDep = Annotated[str, Depends(require_admin)]
