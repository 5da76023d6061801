"""Admin calls of a service: a bearer token whose SHA-256 is configured in a setting.

Only the hash is configured, so the setting (a ConfigMap or Secret) never holds the token. An
operator makes a token (`openssl rand -hex 32`), stores `printf %s TOKEN | sha256sum` in the
service's setting (and, to call through the API gateway, lists the same token in
GATEWAY_API_KEYS with scope admin: the gateway passes `Authorization` on to any route with an
`admin` segment), and calls with `Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request
from pydantic import AfterValidator, SecretStr

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mastertrade-admin"'}
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _is_a_hash(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not SHA256_HEX.match(value.get_secret_value().strip().lower()):
        raise ValueError("must be 64 hex digits (a SHA-256), not the token itself")
    return value


AdminTokenHash = Annotated[SecretStr | None, AfterValidator(_is_a_hash)]
"""A setting holding the SHA-256 of an admin token (never the token)."""


def check_token(authorization: str | None, expected: SecretStr | None, setting: str) -> str:
    """The caller's name for the audit trail, or an HTTPException: 503 while `setting` is
    unset, 401 without a bearer token, 403 for the wrong one."""
    if expected is None:
        raise HTTPException(503, f"admin calls are disabled: set {setting}")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send Authorization: Bearer <admin token>", headers=CHALLENGE)
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    if not hmac.compare_digest(digest, expected.get_secret_value().strip().lower()):
        raise HTTPException(403, "this token is not the admin token", headers=CHALLENGE)
    return f"admin:{digest[:8]}"


def require_token(setting: str) -> Callable[[Request], Awaitable[str]]:
    """A FastAPI dependency admitting the admin token of `setting` (a field of the app's
    settings, e.g. RISK_ADMIN_API_KEY_SHA256): the caller's name, or the HTTPException of
    `check_token`."""
    field = setting.lower()

    async def require_admin(request: Request) -> str:
        expected: SecretStr | None = getattr(request.app.state.settings, field)
        return check_token(request.headers.get("authorization"), expected, setting)

    return require_admin
