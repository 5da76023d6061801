"""alert_system's configuration at the edges, on the same local servers as test_alerts.py: the
test alert needs the admin token (directly and through the API gateway) and a channel that is
on, a blank credential leaves its channel off, and an unreadable EMAIL_TLS_CA_FILE or a malformed
webhook URL turns its channel off (saying why in /api/v1/status), not the service."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.services.fake_channels import FakeChannels, build_app, smtp_server
from tests.services.helpers import running, wait_for_status
from tests.services.test_alerts import (
    ADMIN,
    ADMIN_TOKEN,
    TEST_ALERT,
    alert_system,
    channel_env,
    settled,
)
from tests.services.test_gateway import bearer, gateway
from tests.services.trading import build_app as build_service
from tests.services.trading import serve_app

pytestmark = pytest.mark.infra


async def test_a_test_alert_needs_the_admin_token(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        anonymous = await client.post(TEST_ALERT, json={})
        wrong = await client.post(TEST_ALERT, json={}, headers=bearer("not-the-token"))
        unprotected = await client.post("/api/v1/alerts/test", json={})  # the old route
        history = (await client.get("/api/v1/alerts")).json()
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "send Authorization: Bearer <admin token>"
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "this token is not the admin token"
    assert unprotected.status_code == 404  # the unauthenticated route is gone
    assert history == [] and fake.received == {}


async def test_without_an_admin_key_the_test_alert_is_refused(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    async with alert_system(trading_env, tmp_path, RISK_ADMIN_API_KEY_SHA256="") as (client, _, _):
        answer = await client.post(TEST_ALERT, json={}, headers=ADMIN)
    assert answer.status_code == 503
    assert answer.json()["detail"] == "admin calls are disabled: set RISK_ADMIN_API_KEY_SHA256"


async def test_the_gateway_passes_an_admin_keys_token_on_to_the_test_alert(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    fake = FakeChannels()
    trade = "a-trading-bot-token-of-some-length"
    keys = f"ops:admin:sha256:{hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()},bot:trade:{trade}"
    with smtp_server(tmp_path) as (_, smtp_port, ca):
        async with serve_app(build_app(fake)) as url:
            app = build_service("alert_system", {**trading_env, **channel_env(url, smtp_port, ca)})
            async with running(app) as client, serve_app(app) as alerts_url:
                env = {**trading_env, "ALERT_SYSTEM_URL": alerts_url, "GATEWAY_API_KEYS": keys}
                async with gateway(env) as through:
                    path = f"/api/alert-system{TEST_ALERT}"
                    body = {"channel": "slack"}
                    trader = await through.post(path, json=body, headers=bearer(trade))
                    admin = await through.post(path, json=body, headers=ADMIN)
                    [alert] = await settled(client, 1, timeout=10)
    assert trader.status_code == 403, trader.text
    assert admin.status_code == 202 and admin.json()["channels"] == ["slack"]
    assert alert["kind"] == "test" and alert["deliveries"][0]["status"] == "sent"


async def test_a_blank_webhook_url_leaves_its_channel_off(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    blank = {"DISCORD_WEBHOOK_URL": "", "SLACK_WEBHOOK_URL": " "}
    async with alert_system(trading_env, tmp_path, **blank) as (client, _, _):
        channels = (await client.get("/api/v1/channels")).json()
        await client.post(TEST_ALERT, json={}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    assert channels["discord"] is False and channels["slack"] is False
    assert {d["channel"]: d["status"] for d in alert["deliveries"]} == dict.fromkeys(
        ["email", "sms", "telegram", "webhook"], "sent"
    )
    assert alert["status"] == "sent"


async def test_an_unreadable_ca_file_turns_email_off_and_the_rest_on(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    async with alert_system(trading_env, tmp_path, EMAIL_TLS_CA_FILE=missing) as (client, _, _):
        health = (await client.get("/health")).json()
        status = (await client.get("/api/v1/status")).json()
        channels = (await client.get("/api/v1/channels")).json()
        to_email = await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        await client.post(TEST_ALERT, json={}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    assert health["status"] == "healthy"
    email = status["channels"]["email"]
    assert email["on"] is False and status["channels"]["slack"] == {"on": True, "error": None}
    assert email["error"].startswith(f"EMAIL_TLS_CA_FILE '{missing}' cannot be used: [Errno 2]")
    assert channels["email"] is False and channels["slack"] is True
    assert to_email.status_code == 422 and "'email' is off: EMAIL_TLS_CA_FILE" in to_email.text
    assert {d["channel"]: d["status"] for d in alert["deliveries"]} == dict.fromkeys(
        ["discord", "slack", "sms", "telegram", "webhook"], "sent"
    )


async def test_a_malformed_webhook_url_turns_its_channel_off_and_the_rest_on(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """A webhook URL with no scheme (its token in the path): Discord is off, saying why without
    the URL; the service starts and every other channel delivers."""
    bad = {"DISCORD_WEBHOOK_URL": "discord.com/api/webhooks/1/T0KEN-s3cr3t"}
    async with alert_system(trading_env, tmp_path, **bad) as (client, _, _):
        health = (await client.get("/health")).json()
        status = (await client.get("/api/v1/status")).json()
        to_discord = await client.post(TEST_ALERT, json={"channel": "discord"}, headers=ADMIN)
        await client.post(TEST_ALERT, json={}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    assert health["status"] == "healthy"
    discord = status["channels"]["discord"]
    assert discord["on"] is False and status["channels"]["slack"] == {"on": True, "error": None}
    assert discord["error"].startswith(
        "DISCORD_WEBHOOK_URL is not usable: no http:// or https:// scheme"
    )
    assert "T0KEN" not in str(status) and "T0KEN" not in to_discord.text
    assert (
        to_discord.status_code == 422 and "'discord' is off: DISCORD_WEBHOOK_URL" in to_discord.text
    )
    assert {d["channel"]: d["status"] for d in alert["deliveries"]} == dict.fromkeys(
        ["email", "slack", "sms", "telegram", "webhook"], "sent"
    )


NO_CHANNEL = "no alert channel is configured: set one, e.g. TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID"


@pytest.mark.parametrize(
    ("channels", "detail"),
    [
        ({}, NO_CHANNEL),
        (
            {"EMAIL_USER": "bot@x.io", "EMAIL_PASSWORD": "pw", "EMAIL_TLS_CA_FILE": "/no/ca.pem"},
            "no alert channel is on: email is off: EMAIL_TLS_CA_FILE '/no/ca.pem' cannot be used",
        ),
    ],
)
async def test_a_test_alert_with_no_channel_on_is_refused_and_stores_nothing(
    trading_env: dict[str, str], channels: dict[str, str], detail: str
) -> None:
    admin = {"RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
    async with running(build_service("alert_system", trading_env | admin | channels)) as client:
        await wait_for_status(client, "/health", 200)
        answer = await client.post(TEST_ALERT, json={}, headers=ADMIN)
        history = (await client.get("/api/v1/alerts")).json()
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(detail)
    assert history == []
