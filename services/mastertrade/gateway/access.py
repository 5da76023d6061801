"""Who may do what through the gateway: the scope a request needs, and the caller it is.

Reads (GET, HEAD, OPTIONS) need no key unless GATEWAY_REQUIRE_KEY_FOR_READS; anything that may
change state needs a key with scope trade; a service's admin routes (any path with an `admin`
segment, e.g. the risk manager's `/api/v1/admin/circuit-breaker/reset`), the alert system's
receivers of Prometheus' and Alertmanager's notifications (what is posted there is sent to
people) and the gateway's own key listing need admin. A key is sent as
`Authorization: Bearer <token>` or `X-API-Key: <token>`. A path that still holds `%`, `?` or `#`
once decoded, or a `..` segment, is not forwarded at all (`unforwardable`).
"""

from __future__ import annotations

from starlette.datastructures import Headers

from mastertrade.gateway.keys import ApiKey, KeyStore, Scope, scope_allows

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TOKEN_CHARS = 256


# Receivers of another system's notifications, by (service, path): in the cluster only
# Prometheus reaches them (NetworkPolicy); anything posted there goes to people's phones and
# inboxes, which only an admin may do (the test alert is an admin route too).
NOTIFICATION_RECEIVERS = frozenset({
    ("alert-system", "api/v2/alerts"), ("alert-system", "api/v1/alertmanager"),
})  # fmt: skip
# Characters that a decoded path must not hold: the upstream's URL parsing would read them anew
# (`%61dmin`, sent as `%2561dmin`, reaches the service as `admin`; `?` starts a query, `#` ends
# the path), so what the scope was decided on would not be what the service gets.
UNFORWARDABLE = ("%", "?", "#")


def unforwardable(path: str) -> str | None:
    """Why a service path cannot be forwarded as it is; None when it can. A `..` segment is
    refused too: the upstream's URL parsing removes it with the segment before it
    (`api/v2/x/../alerts` reaches the alert system as `api/v2/alerts`, a receiver a trade key
    may not post to), so the scope would be decided on another path than the one served."""
    if ".." in path.split("/"):
        return "the path holds a '..' segment: send the path it stands for instead"
    found = [character for character in UNFORWARDABLE if character in path]
    if not found:
        return None
    return (f"the path holds {' and '.join(repr(c) for c in found)} once decoded: "
            "percent-encode each character of a path at most once")  # fmt: skip


def is_admin_path(path: str, service: str = "") -> bool:
    """Whether a service path (as after `/api/<service>/`) is one of its admin routes: any
    `admin` segment counts, so `api//v1/./admin/x` cannot slip past as a lesser route; and the
    alert system's notification receivers."""
    segments = [part for part in path.lower().split("/") if part not in ("", ".")]
    return "admin" in segments or (service, "/".join(segments)) in NOTIFICATION_RECEIVERS


def required_scope(
    method: str, require_key_for_reads: bool, path: str = "", service: str = ""
) -> Scope | None:
    """The scope a proxied request to `service` (its Kubernetes name) needs; None when it may
    come without a key."""
    if is_admin_path(path, service):
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
