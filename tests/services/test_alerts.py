"""alert_system on real PostgreSQL and RabbitMQ, delivering to local servers that answer like
Telegram, Discord, Slack, Twilio, a signed-webhook receiver and an SMTP server with STARTTLS.

`alert_system`, `settled`, `ADMIN` and `TEST_ALERT` are shared with the other alert tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from mastertrade.alerts.adapters.store import LeaseHolder, mark_delivery, store_alert
from mastertrade.alerts.domain.delivery import HELD_BACK_KIND
from mastertrade.core.bus import publish_json
from mastertrade.core.messages import AlertEvent
from mastertrade_model.topology import ALERTS, ORDERS
from tests.infra import free_port
from tests.services.fake_channels import (
    AUTH,
    CHAT,
    SID,
    TOKEN,
    FakeChannels,
    Mailbox,
    build_app,
    smtp_server,
)
from tests.services.helpers import running, wait_for_status
from tests.services.trading import build_app as build_service
from tests.services.trading import recording, serve_app

pytestmark = pytest.mark.infra

HOOK_SECRET = "hook-secret"
ADMIN_TOKEN = "alerts-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TEST_ALERT = "/api/v1/admin/alerts/test"


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
        "ALERT_EMAIL_RETRY_LATER_SECONDS": "0.3",
        "ALERT_MAX_ATTEMPTS": "3",
        "RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
    }


@asynccontextmanager
async def alert_system(
    env: dict[str, str], tmp_path: Path, **extra: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeChannels, Mailbox]]:
    fake = FakeChannels()
    with smtp_server(tmp_path) as (mailbox, smtp_port, ca):
        async with serve_app(build_app(fake)) as url:
            settings = {**env, **channel_env(url, smtp_port, ca), **extra}
            try:
                async with running(build_service("alert_system", settings)) as client:
                    await wait_for_status(client, "/health", 200)
                    yield client, fake, mailbox
            finally:
                fake.release()  # a server left hanging answers, so it can stop


async def settled(
    client: httpx.AsyncClient,
    count: int,
    timeout: float = 20,
    kind: str | None = None,
    without: str | None = None,
) -> list[dict[str, Any]]:
    """The latest `count` alerts (of `kind`; of any but `without`) once none of their
    deliveries is pending."""
    deadline = time.monotonic() + timeout
    params: dict[str, Any] = {"limit": count + (50 if without else 0)}
    params |= {"kind": kind} if kind else {}
    while True:
        history: list[dict[str, Any]] = (await client.get("/api/v1/alerts", params=params)).json()
        history = [a for a in history if a["kind"] != without][:count]
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
        answer = await client.post(TEST_ALERT, json={"message": "hello ops"}, headers=ADMIN)
        [alert] = await settled(client, 1, kind="test")
    assert all(channels.values()) and len(channels) == 6
    assert answer.status_code == 202
    assert {d["channel"]: d["status"] for d in alert["deliveries"]} == dict.fromkeys(
        ["discord", "email", "slack", "sms", "telegram", "webhook"], "sent"
    )
    assert alert["status"] == "sent"
    assert alert["source"] == f"api (admin:{hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()[:8]})"
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
        await client.post(TEST_ALERT, json={}, headers=ADMIN)
        [alert] = await settled(client, 1)
    deliveries = {d["channel"]: d for d in alert["deliveries"]}
    assert (deliveries["telegram"]["status"], deliveries["telegram"]["attempts"]) == ("sent", 2)
    assert (deliveries["discord"]["status"], deliveries["discord"]["attempts"]) == ("sent", 2)
    assert (deliveries["slack"]["status"], deliveries["slack"]["attempts"]) == ("failed", 3)
    assert "HTTP 500" in deliveries["slack"]["last_error"]
    assert alert["status"] == "partial"
    assert deliveries["sms"]["status"] == deliveries["email"]["status"] == "sent"


async def test_retries_wait_out_each_services_429(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """Telegram (`parameters.retry_after`), Discord (`retry_after`) and Slack (`Retry-After`)
    answer 429 again to a retry sent before their wait is over: each retry waits it out."""
    waits = {"telegram": 1.0, "discord": 0.5, "slack": 1.0}
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        for channel in waits:
            fake.fail(channel, "429")
        await client.post(TEST_ALERT, json={}, headers=ADMIN)
        [alert] = await settled(client, 1)
    deliveries = {d["channel"]: (d["status"], d["attempts"]) for d in alert["deliveries"]}
    assert deliveries == dict.fromkeys(deliveries, ("sent", 1)) | dict.fromkeys(waits, ("sent", 2))
    for channel, wait in waits.items():
        first, retry = fake.arrivals[channel]
        assert retry - first >= wait, channel


async def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def test_a_channel_that_hangs_holds_no_connection_another_channel_needs(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """Discord's server takes requests and never answers; with 150 Discord deliveries on the
    wire (more than an HTTP pool's 100 connections), a Slack alert still goes out at once, not
    when the Discord attempts are cut off at ALERT_SEND_TIMEOUT_SECONDS (10 s here)."""
    limits = {"ALERT_SEND_TIMEOUT_SECONDS": "10", "ALERT_RATE_LIMIT_PER_MINUTE": "10000",
              "ALERT_MAX_ATTEMPTS": "1"}  # fmt: skip
    async with alert_system(trading_env, tmp_path, **limits) as (client, fake, _):
        fake.hang("discord")
        for _ in range(150):
            await client.post(TEST_ALERT, json={"channel": "discord"}, headers=ADMIN)
        await until(lambda: len(fake.arrivals.get("discord", [])) >= 100, timeout=10)
        asked = time.monotonic()
        await client.post(TEST_ALERT, json={"channel": "slack"}, headers=ADMIN)
        await until(lambda: "slack" in fake.received, timeout=15)
        took = fake.arrivals["slack"][0] - asked
    assert took < 10 / 3  # a third of an attempt's limit at most (before: nearly all of it)


def filled(order: str) -> dict[str, str]:
    return {
        "client_order_id": order,
        "symbol": "BTCUSDT",
        "side": "buy",
        "status": "filled",
        "environment": "paper",
        "quantity": "1",
        "filled_quantity": "1",
        "average_price": "100",
        "fee": "0.1",
    }


BREAKER = {
    "kind": "circuit_breaker",
    "severity": "critical",
    "title": "Breaker tripped",
    "dedup_key": "breaker-1",
}


async def test_a_burst_of_fills_never_silences_a_critical_alert_nor_a_repeat(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """Two deliveries a minute per channel: the third fill is rate limited everywhere, the
    breaker (critical) still goes out; the breaker's repeat is deduplicated, the third fill's
    repeat is not (it was never delivered). Each channel's readers are then told, in one
    digest on that channel, what its limit held back."""
    limited = {"ALERT_RATE_LIMIT_PER_MINUTE": "2"}
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path, **limited) as (client, fake, _),
    ):
        for number, order in enumerate(["mt-1", "mt-2", "mt-3"], start=1):
            await publish_json(channel, ORDERS.name, "order.filled", filled(order))
            await settled(client, number, without=HELD_BACK_KIND)
        for _ in range(2):  # the same breaker event twice: one alert
            await publish_json(channel, ALERTS.name, "alert.circuit_breaker", BREAKER)
        await settled(client, 5, without=HELD_BACK_KIND)
        await publish_json(channel, ORDERS.name, "order.filled", filled("mt-3"))
        history = await settled(client, 6, without=HELD_BACK_KIND)
        texts = [body["text"] for body in fake.received["telegram"]][:3]
        # told within a round of the service's loop (RENEW_SECONDS)
        digests = await settled(client, 6, timeout=30, kind=HELD_BACK_KIND)
    by_title = [(a["title"].split(" (")[0], a["status"]) for a in reversed(history)]
    assert by_title == [
        ("Filled: buy 1 BTCUSDT at 100", "sent"),
        ("Filled: buy 1 BTCUSDT at 100", "sent"),
        ("Filled: buy 1 BTCUSDT at 100", "failed"),  # over the limit on every channel
        ("Breaker tripped", "sent"),  # critical: over the limit, sent all the same
        ("Breaker tripped", "suppressed"),
        ("Filled: buy 1 BTCUSDT at 100", "failed"),  # a repeat, but of one never delivered
    ]
    assert {d["status"] for d in history[0]["deliveries"]} == {"rate_limited"}
    assert len(texts) == 3 and texts[2] == "[CRITICAL] Breaker tripped"
    channels = {d["channel"] for d in history[0]["deliveries"]}
    told = {a["deliveries"][0]["channel"]: a for a in digests}
    assert len(digests) == len(channels) == 6 and told.keys() == channels
    for name, digest in told.items():
        [delivery] = digest["deliveries"]
        assert delivery["status"] == "sent", digest  # over the limit, sent all the same
        assert re.fullmatch(rf"[12] alerts? not sent on {name}: over its rate limit",
                            digest["title"]), digest["title"]  # fmt: skip
        assert "order_filled x" in digest["message"] and "at most 2 alerts" in digest["message"]
    [told_on_telegram] = [body["text"] for body in fake.received["telegram"]][3:]
    assert told_on_telegram.startswith("[WARNING] ") and "not sent on telegram" in told_on_telegram


async def test_what_a_replica_held_back_before_it_stopped_is_told_by_the_next(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """A replica's rate limit held two fills back on slack, and the replica stopped before its
    digest was due. The next alert system to start tells slack's readers of both, on slack."""
    holder = LeaseHolder("replica-gone", 60.0)
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        for order in ("mt-1", "mt-2"):
            alert = AlertEvent(kind="order_filled", title=f"Filled {order}")
            alert_id = await store_alert(pool, alert, ["slack"], 300.0, holder)
            assert alert_id is not None
            limited = ("rate_limited", 0, "over 2 per minute")
            assert await mark_delivery(pool, alert_id, "slack", limited, holder.owner)
    finally:
        await pool.close()
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        [digest] = await settled(client, 1, kind=HELD_BACK_KIND)
        [text] = [body["text"] for body in fake.received["slack"]]
    assert digest["title"] == "2 alerts not sent on slack: over its rate limit"
    assert [(d["channel"], d["status"]) for d in digest["deliveries"]] == [("slack", "sent")]
    assert "2 alerts not sent on slack" in text and "order_filled x2" in text


async def test_an_event_without_a_dedup_key_delivered_twice_is_one_alert(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """The risk manager's kill switch alert names no key: the broker redelivering it (or its
    outbox publishing it again) must not text the operator twice; a later event is new."""
    switched = {"kind": "kill_switch", "severity": "critical", "title": "Kill switch ON",
                "occurred_at": "2026-12-06T10:00:00+00:00"}  # fmt: skip
    later = switched | {"occurred_at": "2026-12-06T10:05:00+00:00"}
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path) as (client, fake, _),
    ):
        for number, event in enumerate([switched, switched, later], start=1):
            await publish_json(channel, ALERTS.name, "alert.kill_switch", event)
            history = await settled(client, number)
    statuses = [alert["status"] for alert in reversed(history)]
    assert statuses == ["sent", "suppressed", "sent"]
    assert [body["text"] for body in fake.received["telegram"]] == ["[CRITICAL] Kill switch ON"] * 2


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


@pytest.mark.parametrize("path", ["/api/v1/alertmanager", "/api/v2/alerts"])
@pytest.mark.parametrize(("bad", "said"), [("\u0000", "NUL character"), ("\ud800", "surrogate")])
async def test_a_post_with_one_unstorable_alert_is_refused_whole_before_anything_is_sent(
    trading_env: dict[str, str], tmp_path: Path, path: str, bad: str, said: str
) -> None:
    """A NUL character or a lone surrogate cannot be stored by PostgreSQL: the alerts before it
    in the same post were stored and sent, and the caller got a 422 (or a 500) as if none had
    been."""
    alerts = [{"status": "firing", "labels": {"alertname": "Fine"}},
              {"status": "firing", "labels": {"alertname": f"Bad{bad}"}}]  # fmt: skip
    body: Any = (
        {"status": "firing", "alerts": alerts}
        if path.endswith("alertmanager")
        else [{"labels": alert["labels"]} for alert in alerts]
    )
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        # escaped as JSON allows (\ud800): a lone surrogate cannot be sent as UTF-8
        answer = await client.post(
            path, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        history = (await client.get("/api/v1/alerts")).json()
    assert answer.status_code == 422
    assert said in answer.text and "alertname" in answer.text
    assert history == [] and not any(fake.received.values())


async def test_an_unreachable_channel_never_blocks_start_up(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        **trading_env,
        "SLACK_WEBHOOK_URL": f"{dead}/slack",
        "ALERT_MAX_ATTEMPTS": "2",
        "ALERT_RETRY_BASE_SECONDS": "0.1",
        "RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
    }
    async with running(build_service("alert_system", env)) as client:
        await wait_for_status(client, "/health", 200)
        wrong = await client.post(TEST_ALERT, json={"channel": "telegram"}, headers=ADMIN)
        huge = await client.post(TEST_ALERT, json={"channel": "x" * 100_000}, headers=ADMIN)
        nul = await client.post(TEST_ALERT, json={"message": "a\u0000b"}, headers=ADMIN)
        await client.post(TEST_ALERT, json={"channel": "slack"}, headers=ADMIN)
        [alert] = await settled(client, 1)
    assert wrong.status_code == 422 and "not configured (slack)" in wrong.json()["detail"]
    assert huge.status_code == 422 and len(huge.content) < 1000  # not echoed whole
    assert nul.status_code == 422 and "NUL character" in nul.text  # PostgreSQL cannot store it
    assert alert["deliveries"][0]["status"] == "failed"
    assert "ConnectError" in alert["deliveries"][0]["last_error"]
