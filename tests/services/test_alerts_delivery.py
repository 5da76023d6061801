"""alert_system's deliveries when things go wrong, against the same local servers as
test_alerts.py: a title that would break an e-mail header, Telegram answers of the wrong shape,
a Telegram flood wait longer than the backoff's cap, a channel that raises what nobody expected,
an outcome the database refuses, SMTP errors that retrying cannot fix."""

from __future__ import annotations

import asyncio
import email
import logging
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from mastertrade.alerts.adapters import dispatcher as dispatcher_module
from mastertrade.alerts.adapters import store as store_module
from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.channels.chat import TelegramChannel
from mastertrade.alerts.adapters.channels.email import EmailChannel, build_tls_context
from mastertrade.alerts.adapters.dispatcher import Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import LeaseHolder, claim_pending, store_alert
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.core.bus import publish_json
from mastertrade.core.messages import AlertEvent
from mastertrade_model.topology import ALERTS
from tests.infra import free_port
from tests.services.fake_channels import (
    CHAT,
    SUPERGROUP,
    TOKEN,
    FakeChannels,
    build_app,
    make_certificate,
    smtp_server,
)
from tests.services.test_alerts import ADMIN, TEST_ALERT, alert_system, settled
from tests.services.trading import recording, serve_app

pytestmark = pytest.mark.infra


async def test_a_title_with_line_breaks_is_mailed_with_a_one_line_subject(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    event = {"kind": "custom", "severity": "warning", "title": "Breaker tripped\nBcc: all@x.io"}
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path) as (client, _, mailbox),
    ):
        await publish_json(channel, ALERTS.name, "alert.custom", event)
        [alert] = await settled(client, 1, timeout=10)
    deliveries = {d["channel"]: d["status"] for d in alert["deliveries"]}
    assert deliveries["email"] == "sent", alert["deliveries"]
    [(recipients, raw)] = mailbox.messages
    message = email.message_from_bytes(raw)
    assert message["Subject"] == "[MasterTrade warning] Breaker tripped Bcc: all@x.io"
    assert recipients == ["ops@x.io"] and message["Bcc"] is None  # no header smuggled in


@pytest.mark.parametrize("answer", ["429-parameters-not-a-dict", "429-retry-after-not-a-number"])
async def test_a_telegram_429_of_an_unexpected_shape_is_retried(
    trading_env: dict[str, str], tmp_path: Path, answer: str
) -> None:
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        fake.fail("telegram", answer)
        await client.post(TEST_ALERT, json={"channel": "telegram"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    [delivery] = alert["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2)
    assert len(fake.received["telegram"]) == 1


async def test_a_group_upgraded_to_a_supergroup_fails_naming_the_chat_id_to_set() -> None:
    """Every alert would fail with "group chat was upgraded" until the setting changes: the
    error says what to set it to (Telegram's `parameters.migrate_to_chat_id`)."""
    fake = FakeChannels()
    fake.fail("telegram", "400-upgraded-to-supergroup")
    alert = AlertEvent(kind="custom", severity="warning", title="moved")
    async with serve_app(build_app(fake)) as url, httpx.AsyncClient() as http:
        with pytest.raises(ChannelError) as error:
            await TelegramChannel(http, url, TOKEN, CHAT).send(alert)
    assert f"set TELEGRAM_CHAT_ID={SUPERGROUP}" in str(error.value)
    assert not error.value.retryable


async def test_a_flood_wait_longer_than_the_backoffs_cap_is_waited_out_its_lease_renewed(
    trading_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram bans a flooding bot for `retry_after` seconds, often more than the backoff's
    60 s cap, and answers 429 to every request until then: a retry inside the ban spends an
    attempt. Scaled down: the backoff's cap is 0.1 s, the ban 2 s, and a lease runs 1.2 s from
    its renewal (due every 0.3 s, as `keep_deliveries` renews it): the delivery waits the ban
    out, its lease renewed meanwhile, and its one retry is sent."""
    monkeypatch.setattr(dispatcher_module, "RENEW_SECONDS", 0.3)
    monkeypatch.setattr(dispatcher_module, "LEASE_MARGIN", 0.1)
    policy = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1, attempt_seconds=0.5,
                         max_server_delay=5.0)  # fmt: skip
    assert policy.lease_seconds < 2
    fake = FakeChannels(retry_after={"telegram": 2})
    fake.fail("telegram", "429")
    alert = AlertEvent(kind="custom", severity="critical", title="flood")
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        async with serve_app(build_app(fake)) as url, httpx.AsyncClient() as http:
            channel = TelegramChannel(http, url, TOKEN, CHAT)
            dispatcher = Dispatcher({"telegram": channel}, lambda: pool, RateLimiter(10), policy)
            alert_id = await store_alert(pool, alert, ["telegram"], 300, dispatcher.holder)
            assert alert_id is not None
            delivering = asyncio.create_task(dispatcher.deliver(alert_id, "telegram", alert))
            while not delivering.done():
                await dispatcher.renew()
                await asyncio.wait({delivering}, timeout=0.3)
        row = await pool.fetchrow("SELECT status, attempts FROM alert_deliveries "
                                  "WHERE alert_id = $1", alert_id)  # fmt: skip
    finally:
        await pool.close()
    assert row is not None and (row["status"], row["attempts"]) == ("sent", 2)
    first, retry = fake.arrivals["telegram"]
    assert retry - first >= 2


async def test_an_outcome_the_database_refuses_is_recorded_without_its_error(
    trading_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error text PostgreSQL refuses (here a Latin-1 SMTP answer, as aiosmtplib reads it,
    recorded without `clean_error`, standing for any text the cleaning would miss): the
    delivery is recorded all the same, without its text, not left pending to be sent again by
    the replica that claims it once its lease runs out."""
    monkeypatch.setattr(store_module, "clean_error", lambda text: text)
    alert = AlertEvent(kind="custom", title="breaker")
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        with smtp_server(tmp_path) as (mailbox, port, ca):
            mailbox.refuse("550 5.1.1 Empfänger unbekannt".encode("latin-1"), to="gone@x.io")
            channel = email_channel(port, ca, to=["ops@x.io", "gone@x.io"])
            dispatcher = Dispatcher({"email": channel}, lambda: pool, RateLimiter(10),
                                    RetryPolicy(3, 0.01), "a")  # fmt: skip
            alert_id = await store_alert(pool, alert, ["email"], 300, dispatcher.holder)
            assert alert_id is not None
            await dispatcher.deliver(alert_id, "email", alert)
            await pool.execute("UPDATE alert_deliveries SET lease_until = now() - interval '1 s' "
                               "WHERE alert_id = $1", alert_id)  # fmt: skip
            claimed = await claim_pending(pool, LeaseHolder("b", 60))
        row = await pool.fetchrow("SELECT status, attempts, last_error FROM alert_deliveries "
                                  "WHERE alert_id = $1", alert_id)  # fmt: skip
    finally:
        await pool.close()
    assert row is not None and claimed == []
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert row["last_error"].startswith("email: the error could not be recorded (")
    assert len(mailbox.messages) == 1


class BrokenChannel:
    """A channel with a bug: it raises what no channel is supposed to."""

    name = "broken"

    async def send(self, alert: AlertEvent) -> None:
        raise KeyError("retry_after")


async def test_an_unexpected_error_ends_the_delivery_as_failed_and_is_logged(
    trading_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        alert = AlertEvent(kind="custom", title="anything")
        dispatcher = Dispatcher(
            {"broken": BrokenChannel()}, lambda: pool, RateLimiter(10), RetryPolicy(3, 0.01)
        )
        alert_id = await store_alert(pool, alert, ["broken"], 300, dispatcher.holder)
        assert alert_id is not None
        with caplog.at_level(logging.ERROR, "mastertrade.alerts"):
            await dispatcher.deliver(alert_id, "broken", alert)
        row = await pool.fetchrow(
            "SELECT d.status, d.attempts, d.last_error, a.status AS alert_status "
            "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id WHERE a.id = $1",
            alert_id,
        )
    finally:
        await pool.close()
    assert row is not None
    assert (row["status"], row["attempts"], row["alert_status"]) == ("failed", 1, "failed")
    assert row["last_error"] == "broken: KeyError('retry_after')"
    assert f"broken delivery of alert {alert_id} failed" in caplog.text


async def test_smtp_refusals_that_cannot_pass_fail_at_once_and_transient_ones_are_retried(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    async with alert_system(trading_env, tmp_path) as (client, _, mailbox):
        mailbox.refuse("550 5.1.1 <ops@x.io>: no such user")
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [refused] = await settled(client, 1, timeout=10)
        mailbox.refuse("450 4.2.1 mailbox busy, try again later")
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [busy] = await settled(client, 1, timeout=10)
    [failed] = refused["deliveries"]
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "every recipient refused (ops@x.io: 550" in failed["last_error"]
    [retried] = busy["deliveries"]
    assert (retried["status"], retried["attempts"]) == ("sent", 2)
    assert mailbox.recipients_tried == 3


def email_channel(
    port: int, ca: Path, password: str = "pw", to: list[str] | None = None
) -> EmailChannel:
    recipients = to or ["ops@x.io"]
    return EmailChannel(
        ("127.0.0.1", port), ("bot@x.io", password), recipients, build_tls_context(str(ca)), 5
    )


async def send_error(channel: EmailChannel) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await channel.send(AlertEvent(kind="custom", title="t"))
    return caught.value


async def test_an_email_attempt_cut_off_at_its_limit_ends_at_once(tmp_path: Path) -> None:
    """A server 3 s slow to answer DATA, an attempt cut off after 0.5 s (as the dispatcher cuts
    it at ALERT_SEND_TIMEOUT_SECONDS): the connection is dropped then, not held for a QUIT the
    busy server would answer only after DATA, so the attempt ends within its time limit."""
    with smtp_server(tmp_path) as (mailbox, port, ca):
        mailbox.data_delay = 3.0
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await email_channel(port, ca).send(AlertEvent(kind="custom", title="slow"))
        took = time.monotonic() - started
        mailbox.data_delay = 0.0
        await email_channel(port, ca).send(AlertEvent(kind="custom", title="next"))
    assert took < 1.5
    assert any(b"Subject: [MasterTrade info] next" in raw for _, raw in mailbox.messages)


async def test_smtp_without_starttls_or_with_a_wrong_login_is_not_retried(tmp_path: Path) -> None:
    folders = [tmp_path / name for name in ("plain", "tls", "other")]
    for folder in folders:
        folder.mkdir()
    other_ca, _ = make_certificate(folders[2])
    with smtp_server(folders[0], starttls=False) as (_, port, ca):
        no_tls = await send_error(email_channel(port, ca))
    with smtp_server(folders[1]) as (_, port, ca):
        wrong_login = await send_error(email_channel(port, ca, password="wrong"))
        untrusted = await send_error(email_channel(port, other_ca))
    refused = await send_error(email_channel(free_port(), ca))
    assert not no_tls.retryable and "STARTTLS extension not supported" in str(no_tls)
    assert not wrong_login.retryable and str(wrong_login).startswith("email: 535")
    assert untrusted.retryable is False and "certificate does not verify" in str(untrusted)
    assert refused.retryable  # nobody listening: maybe the server restarts, try again
