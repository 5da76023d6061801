"""alert_system's deliveries when things go wrong, against the same local servers as
test_alerts.py: a title that would break an e-mail header, Telegram answers of the wrong shape,
a channel that raises what nobody expected, SMTP errors that retrying cannot fix."""

from __future__ import annotations

import asyncio
import email
import logging
import time
from pathlib import Path

import asyncpg
import pytest

from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.channels.email import EmailChannel, build_tls_context
from mastertrade.alerts.adapters.dispatcher import Dispatcher, RetryPolicy
from mastertrade.alerts.adapters.store import store_alert
from mastertrade.alerts.domain.delivery import RateLimiter
from mastertrade.core.bus import publish_json
from mastertrade.core.messages import AlertEvent
from mastertrade_model.topology import ALERTS
from tests.infra import free_port
from tests.services.fake_channels import make_certificate, smtp_server
from tests.services.test_alerts import ADMIN, TEST_ALERT, alert_system, settled
from tests.services.trading import recording

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


def email_channel(port: int, ca: Path, password: str = "pw") -> EmailChannel:
    return EmailChannel(
        ("127.0.0.1", port), ("bot@x.io", password), ["ops@x.io"], build_tls_context(str(ca)), 5
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
