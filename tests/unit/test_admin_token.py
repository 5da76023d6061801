"""Admin tokens are configured only as their SHA-256: a setting holding anything else (the token
itself, say) is refused at start with what to put there instead, in every service that has one."""

from __future__ import annotations

import hashlib

import pytest
from fastapi import HTTPException
from pydantic import SecretStr, ValidationError

from mastertrade.core.admin_token import check_token
from mastertrade.risk.settings import RiskSettings
from mastertrade.strategy.settings import StrategySettings

TOKEN = "a-long-random-admin-token"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


@pytest.mark.parametrize(
    ("settings", "name"),
    [(RiskSettings, "risk_admin_api_key_sha256"),
     (StrategySettings, "strategy_admin_api_key_sha256")],
)  # fmt: skip
def test_only_a_sha256_is_accepted(settings: type, name: str) -> None:
    assert getattr(settings(**{name: DIGEST.upper()}), name).get_secret_value() == DIGEST.upper()
    with pytest.raises(ValidationError, match="64 hex digits"):
        settings(**{name: TOKEN})


def test_the_token_is_checked_against_its_hash() -> None:
    assert check_token(f"Bearer {TOKEN}", SecretStr(DIGEST), "X").startswith("admin:")
    for header, status in ((None, 401), ("Basic abc", 401), ("Bearer wrong", 403)):
        with pytest.raises(HTTPException) as refused:
            check_token(header, SecretStr(DIGEST), "X")
        assert refused.value.status_code == status
    with pytest.raises(HTTPException) as disabled:
        check_token(f"Bearer {TOKEN}", None, "STRATEGY_ADMIN_API_KEY_SHA256")
    assert disabled.value.status_code == 503
    assert "STRATEGY_ADMIN_API_KEY_SHA256" in str(disabled.value.detail)
