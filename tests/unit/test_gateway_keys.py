"""Gateway API keys: parsed from a Secret's entries, held as digests, ordered scopes."""

from __future__ import annotations

import pytest

from mastertrade.gateway.access import required_scope
from mastertrade.gateway.keys import (
    KeyStore,
    digest_of,
    main,
    new_entry,
    parse_entries,
    scope_allows,
)

TOKEN = "t" * 32


def test_entries_hold_only_digests_and_find_their_tokens() -> None:
    token, entry = new_entry("ops", "admin")
    keys = parse_entries(f"# comment\nbot:trade:{TOKEN}\n\n{entry}, viewer:read:{'v' * 30}")
    assert [(k.name, k.scope) for k in keys] == [("bot", "trade"), ("ops", "admin"),
                                                 ("viewer", "read")]  # fmt: skip
    assert all(TOKEN not in repr(k) and token not in repr(k) for k in keys)
    store = KeyStore(keys)
    found = store.find(token)
    assert found is not None and found.name == "ops"
    assert store.find(TOKEN) is not None and store.find(TOKEN + "x") is None
    assert keys[0].digest == digest_of(TOKEN)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("bot:root:" + TOKEN, "scope must be read, trade or admin"),
        ("bad name:read:" + TOKEN, "the name must be"),
        ("bot:read:short", "at least 24 characters"),
        ("bot:read:sha256:abc", "at least 24 characters"),
        (f"bot:read:{TOKEN},bot:trade:{'u' * 30}", "bot repeated"),
    ],
)
def test_bad_entries_say_what_is_wrong_without_the_secret(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as error:
        parse_entries(text)
    assert TOKEN not in str(error.value)


def test_scopes_are_ordered_and_only_changes_need_a_key() -> None:
    assert scope_allows("admin", "trade") and scope_allows("trade", "read")
    assert not scope_allows("read", "trade") and not scope_allows("trade", "admin")
    assert required_scope("GET", False) is None
    assert required_scope("GET", True) == "read"
    assert required_scope("POST", False) == "trade"
    assert required_scope("delete", False) == "trade"


def test_the_key_command_prints_a_token_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ci", "read"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[0].rsplit(" ", 1)[1]
    entry = out[1].rsplit(" ", 1)[1]
    assert KeyStore(parse_entries(entry)).find(token) is not None
    assert main(["ci", "root"]) == 2
