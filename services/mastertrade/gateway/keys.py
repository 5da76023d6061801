"""API keys of the gateway: issued from a Kubernetes Secret, held only as sha256 digests.

An entry is `name:scope:secret`, one per line (a mounted Secret file, GATEWAY_API_KEYS_FILE) or
separated by commas/newlines (an env var from a Secret, GATEWAY_API_KEYS). `secret` is either
the token itself or, better, `sha256:<64 hex digits>` of it, so that even the Secret does not
hold the token. Scopes are ordered: read < trade < admin; a key may do what its scope and every
lower one allow. `python -m mastertrade.gateway.keys NAME SCOPE` makes a new token and its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["read", "trade", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "trade", "admin")
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
MIN_TOKEN_CHARS = 24


def scope_allows(granted: Scope, required: Scope) -> bool:
    """Whether a key of scope `granted` may do what needs `required`."""
    return SCOPES.index(granted) >= SCOPES.index(required)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as the gateway knows it: a name for logs and limits, a scope, a digest."""

    name: str
    scope: Scope
    digest: str


def parse_entry(entry: str, number: int) -> ApiKey:
    """One `name:scope:secret` entry; ValueError says which entry and what is wrong (never
    repeating the secret)."""
    name, _, rest = entry.strip().partition(":")
    scope, _, secret = rest.partition(":")
    if not NAME.match(name):
        raise ValueError(f"API key entry {number}: the name must be 1-64 of A-Z a-z 0-9 _ . -")
    if scope not in SCOPES:
        raise ValueError(f"API key entry {number} ({name}): scope must be read, trade or admin")
    hashed = DIGEST.match(secret)
    if hashed is not None:
        return ApiKey(name, scope, hashed.group(1))
    if len(secret) < MIN_TOKEN_CHARS or ":" in secret:
        raise ValueError(
            f"API key entry {number} ({name}): the secret must be a token of at least "
            f"{MIN_TOKEN_CHARS} characters without ':' or sha256:<64 hex digits>"
        )
    return ApiKey(name, scope, digest_of(secret))


def parse_entries(text: str) -> tuple[ApiKey, ...]:
    """Every entry of `text` (lines or comma-separated; blank lines and # comments skipped)."""
    entries = [item for line in text.splitlines() for item in line.split(",")]
    wanted = [item.strip() for item in entries]
    keys = tuple(
        parse_entry(item, number)
        for number, item in enumerate((i for i in wanted if i and not i.startswith("#")), 1)
    )
    names = [key.name for key in keys]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"API key names must be unique: {', '.join(duplicated)} repeated")
    return keys


class KeyStore:
    """Looks tokens up by digest; the tokens themselves are never kept."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {key.digest: key for key in keys}

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, token: str) -> ApiKey | None:
        wanted = digest_of(token)
        key = self._by_digest.get(wanted)
        # the dict lookup is on a digest the caller cannot steer; compare again in constant time
        if key is not None and hmac.compare_digest(key.digest, wanted):
            return key
        return None

    def listed(self) -> list[ApiKey]:
        return sorted(self._by_digest.values(), key=lambda key: key.name)


def new_entry(name: str, scope: str) -> tuple[str, str]:
    """A fresh token and the `name:scope:sha256:...` entry to put in the Secret."""
    token = secrets.token_urlsafe(32)
    entry = f"{name}:{scope}:sha256:{digest_of(token)}"
    parse_entry(entry, 1)
    return token, entry


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mastertrade.gateway.keys NAME SCOPE`: print a token and its Secret entry."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m mastertrade.gateway.keys NAME read|trade|admin", file=sys.stderr)
        return 2
    try:
        token, entry = new_entry(args[0], args[1])
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"token (give to the client, shown once): {token}")
    print(f"entry (add to the gateway's API keys Secret): {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
