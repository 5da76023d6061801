"""Opaque page cursors: the keyset of the last row served, bound to the query that made it.

A cursor is base64url JSON `{"r": resource, "q": query digest, "k": [key values]}`. Clients
treat it as opaque; the server refuses one that is malformed or that belongs to another query
(other filters, range or order), so a cursor can never silently skip or repeat rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mastertrade.data_api.resources import Resource

MAX_CURSOR_CHARS = 512


class CursorError(ValueError):
    """The cursor cannot be used; the message says why and what to do."""


def query_digest(resource: Resource, query: Mapping[str, Any]) -> str:
    """A short digest of everything that defines the sequence of rows (not the page size)."""
    canonical = json.dumps([resource.name, sorted(query.items())], default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(resource: Resource, digest: str, key: Sequence[Any]) -> str:
    body = {"r": resource.name, "q": digest, "k": [_encode_value(v) for v in key]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_value(kind: str, value: Any) -> Any:
    if kind == "time" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "text" and isinstance(value, str):
        return value
    raise CursorError("the cursor is damaged: use next_cursor exactly as it was returned")


def decode_cursor(resource: Resource, digest: str, cursor: str) -> list[Any]:
    """The key values of `cursor`, or CursorError."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise CursorError(f"the cursor is longer than {MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
        name, made_by, key = body["r"], body["q"], body["k"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise CursorError(
            "not a cursor of this API: use next_cursor exactly as it was returned"
        ) from None
    if name != resource.name or made_by != digest:
        raise CursorError(
            "this cursor belongs to another query: repeat the parameters of the request that "
            "returned it (only limit may change), or leave cursor out to start again"
        )
    if not isinstance(key, list) or len(key) != len(resource.key):
        raise CursorError("the cursor is damaged: use next_cursor exactly as it was returned")
    return [_decode_value(resource.kind_of(c), v) for c, v in zip(resource.key, key, strict=True)]
