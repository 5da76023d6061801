"""Who may do what through the gateway: the scope a request needs, and the caller it is.

Reads (GET, HEAD, OPTIONS) need no key unless GATEWAY_REQUIRE_KEY_FOR_READS; anything that may
change state needs a key with scope trade; a service's admin routes (any path with an `admin`
segment, e.g. the risk manager's `/api/v1/admin/circuit-breaker/reset`) and the gateway's own
key listing need admin. A key is
sent as `Authorization: Bearer <token>` or `X-API-Key: <token>`.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from mastertrade.gateway.keys import ApiKey, KeyStore, Scope, scope_allows

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TOKEN_CHARS = 256


def is_admin_path(path: str) -> bool:
    """Whether a service path (as after `/api/<service>/`) is one of its admin routes: any
    `admin` segment counts, so `api//v1/./admin/x` cannot slip past as a lesser route."""
    return "admin" in path.lower().split("/")


def required_scope(method: str, require_key_for_reads: bool, path: str = "") -> Scope | None:
    """The scope a proxied request needs; None when it may come without a key."""
    if is_admin_path(path):
        return "admin"
    if method.upper() in SAFE_METHODS:
        return "read" if require_key_for_reads else None
    return "trade"


def token_of(headers: Headers) -> str | None:
    """The token the caller sent, if any."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    found = headers.get("x-api-key")
    return found.strip() if found else None


class AccessDeniedError(Exception):
    """A request refused: 401 (no or unknown key) or 403 (a key without the scope)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def authorize(keys: KeyStore, headers: Headers, required: Scope | None) -> ApiKey | None:
    """The caller's key (None: anonymous), or AccessDeniedError when the request may not go on."""
    token = token_of(headers)
    if token is None:
        if required is None:
            return None
        raise AccessDeniedError(401, f"an API key with scope {required} is required: send "
                          "'Authorization: Bearer <token>' or 'X-API-Key: <token>'")  # fmt: skip
    key = keys.find(token) if len(token) <= MAX_TOKEN_CHARS else None
    if key is None:
        raise AccessDeniedError(401, "unknown API key")
    if required is not None and not scope_allows(key.scope, required):
        raise AccessDeniedError(
            403, f"API key {key.name} has scope {key.scope}; this needs {required}"
        )
    return key
