"""alert_system on real PostgreSQL and RabbitMQ, delivering to local servers that answer like
Telegram, Discord, Slack, Twilio, a signed-webhook receiver and an SMTP server with STARTTLS."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mastertrade.core.bus import publish_json
from mastertrade_model.topology import ALERTS, ORDERS
from tests.infra import free_port
from tests.services.fake_channels import (
    AUTH,
    CHAT,
    SID,
    TOKEN,
    FakeChannels,
    build_app,
    smtp_server,
)
from tests.services.helpers import running, wait_for_status
from tests.services.trading import build_app as build_service
from tests.services.trading import recording, serve_app

pytestmark = pytest.mark.infra

HOOK_SECRET = "hook-secret"


def channel_env(url: str, smtp_port: int, ca: Path) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": CHAT,
        "TELEGRAM_API_URL": url,
        "DISCORD_WEBHOOK_URL": f"{url}/discord/webhook",
        "SLACK_WEBHOOK_URL": f"{url}/slack/webhook",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": AUTH,
        "TWILIO_API_URL": url,
        "TWILIO_PHONE_NUMBER": "+15550000001",
        "TWILIO_TO_NUMBER": "+15550000002",
        "ALERT_WEBHOOK_URL": f"{url}/hook",
        "ALERT_WEBHOOK_SECRET": HOOK_SECRET,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "EMAIL_USER": "bot@x.io",
        "EMAIL_PASSWORD": "pw",
        "ALERT_EMAIL_TO": "ops@x.io",
        "EMAIL_TLS_CA_FILE": str(ca),
        "ALERT_RETRY_BASE_SECONDS": "0.1",
        "ALERT_MAX_ATTEMPTS": "3",
    }


@asynccontextmanager
async def alert_system(
    env: dict[str, str], tmp_path: Path, **extra: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeChannels, Any]]:
    fake = FakeChannels()
    with smtp_server(tmp_path) as (mailbox, smtp_port, ca):
        async with serve_app(build_app(fake)) as url:
            settings = {**env, **channel_env(url, smtp_port, ca), **extra}
            async with running(build_service("alert_system", settings)) as client:
                await wait_for_status(client, "/health", 200)
                yield client, fake, mailbox


async def settled(
    client: httpx.AsyncClient, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """The latest `count` alerts once none of their deliveries is pending."""
    deadline = time.monotonic() + timeout
    while True:
        history: list[dict[str, Any]] = (
            await client.get("/api/v1/alerts", params={"limit": count})
        ).json()
        done = len(history) == count and all(
            d["status"] != "pending" for a in history for d in a["deliveries"]
        )
        if done or time.monotonic() > deadline:
            return history
        await asyncio.sleep(0.1)


async def test_a_test_alert_reaches_every_channel_in_its_own_protocol(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    async with alert_system(trading_env, tmp_path) as (client, fake, mailbox):
        channels = (await client.get("/api/v1/channels")).json()
        answer = await client.post("/api/v1/alerts/test", json={"message": "hello ops"})
        [alert] = await settled(client, 1)
    assert all(channels.values()) and len(channels) == 6
    assert answer.status_code == 202
    assert {d["channel"]: d["status"] for d in alert["deliveries"]} == dict.fromkeys(
        ["discord", "email", "slack", "sms", "telegram", "webhook"], "sent"
    )
    assert alert["status"] == "sent"
    assert fake.received["telegram"][0]["text"] == "[INFO] Test alert\nhello ops"
    assert fake.received["sms"][0]["To"] == "+15550000002"
    assert fake.received["discord"][0]["content"].startswith("[INFO] Test alert")
    headers, body = fake.received["webhook"][0]
    stamp = headers["x-mastertrade-timestamp"]
    mac = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-mastertrade-signature"] == f"sha256={mac}"
    [(recipients, message)] = mailbox.messages
    assert recipients == ["ops@x.io"] and b"hello ops" in message


async def test_retries_honour_retry_after_and_a_failing_channel_blocks_no_other(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        fake.fail("telegram", "429")
        fake.fail("discord", "429")
        fake.fail("slack", "500", "500", "500")
        await client.post("/api/v1/alerts/test", json={})
        [alert] = await settled(client, 1)
    deliveries = {d["channel"]: d for d in alert["deliveries"]}
    assert (deliveries["telegram"]["status"], deliveries["telegram"]["attempts"]) == ("sent", 2)
    assert (deliveries["discord"]["status"], deliveries["discord"]["attempts"]) == ("sent", 2)
    assert (deliveries["slack"]["status"], deliveries["slack"]["attempts"]) == ("failed", 3)
    assert "HTTP 500" in deliveries["slack"]["last_error"]
    assert alert["status"] == "partial"
    assert deliveries["sms"]["status"] == deliveries["email"]["status"] == "sent"


async def test_events_from_the_bus_are_deduplicated_and_rate_limited(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    event = {
        "kind": "circuit_breaker",
        "severity": "critical",
        "title": "Breaker tripped",
        "dedup_key": "breaker-1",
    }
    filled = {
        "client_order_id": "mt-1",
        "symbol": "BTCUSDT",
        "side": "buy",
        "status": "filled",
        "environment": "paper",
        "quantity": "1",
        "filled_quantity": "1",
        "average_price": "100",
        "fee": "0.1",
    }
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path, ALERT_RATE_LIMIT_PER_MINUTE="2") as (client, fake, _),
    ):
        for _ in range(2):  # the same event twice: one alert
            await publish_json(channel, ALERTS.name, "alert.circuit_breaker", event)
        await publish_json(channel, ORDERS.name, "order.filled", filled)
        await publish_json(channel, ALERTS.name, "alert.other", {**event, "dedup_key": "b-2"})
        history = await settled(client, 4)
    statuses = sorted(a["status"] for a in history)
    assert statuses == ["failed", "sent", "sent", "suppressed"]
    limited = next(a for a in history if a["status"] == "failed")
    assert {d["status"] for d in limited["deliveries"]} == {"rate_limited"}
    titles = {a["title"] for a in history}
    assert "Filled: buy 1 BTCUSDT at 100 (paper)" in titles
    assert len(fake.received["telegram"]) == 2  # the third alert was over the limit


async def test_alertmanager_notifications_become_alerts(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    notification = {
        "version": "4",
        "status": "firing",
        "receiver": "mastertrade",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "ServiceDown",
                    "severity": "critical",
                    "job": "order-executor",
                },
                "annotations": {"summary": "order-executor is down"},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "abc123",
            }
        ],
    }
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        first = await client.post("/api/v1/alertmanager", json=notification)
        again = await client.post("/api/v1/alertmanager", json=notification)
        await settled(client, 2)
    assert first.status_code == 202 and again.json() == {"alerts": [None]}  # repeat: deduped
    assert fake.received["slack"][0]["text"] == (
        "[CRITICAL] [FIRING] ServiceDown\norder-executor is down"
    )


async def test_an_unreachable_channel_never_blocks_start_up(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        **trading_env,
        "SLACK_WEBHOOK_URL": f"{dead}/slack",
        "ALERT_MAX_ATTEMPTS": "2",
        "ALERT_RETRY_BASE_SECONDS": "0.1",
    }
    async with running(build_service("alert_system", env)) as client:
        await wait_for_status(client, "/health", 200)
        wrong = await client.post("/api/v1/alerts/test", json={"channel": "telegram"})
        await client.post("/api/v1/alerts/test", json={"channel": "slack"})
        [alert] = await settled(client, 1)
    assert wrong.status_code == 422 and "not configured (slack)" in wrong.json()["detail"]
    assert alert["deliveries"][0]["status"] == "failed"
    assert "ConnectError" in alert["deliveries"][0]["last_error"]
