"""alert_system's messages as each channel's API reads them, on the local servers of
test_alerts.py: an e-mail's Date and Message-ID, a recipient refused among several, an alert's
text shown on Slack as written and pinging nobody on Discord, and an error answer with control
characters (NUL among them, which PostgreSQL cannot store) recorded all the same."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.channels.chat import DiscordChannel
from mastertrade.core.messages import AlertEvent
from tests.services.fake_channels import FakeChannels, build_app, discord_pings, slack_shown
from tests.services.test_alerts import ADMIN, TEST_ALERT, alert_system, settled
from tests.services.trading import serve_app

pytestmark = pytest.mark.infra

# what a price alert may say, and what each chat reads as a mention or a link
MENTIONS = "BTC < 100 & ETH > 10: <!channel> @everyone @here <@123> <@&456> <https://x.io|x>"


async def test_an_email_has_a_date_and_a_message_id_of_the_senders_domain(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    async with alert_system(trading_env, tmp_path) as (client, _, mailbox):
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    [delivery] = alert["deliveries"]
    assert delivery["status"] == "sent", delivery
    [(_, raw)] = mailbox.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    sent_at = email.utils.parsedate_to_datetime(str(message["Date"]))
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert re.fullmatch(r"<[^@<>\s]+@x\.io>", str(message["Message-ID"]))


async def test_a_recipient_refused_among_several_is_recorded_and_the_alert_partial(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    to = {"ALERT_EMAIL_TO": "gone@x.io, ops@x.io"}
    async with alert_system(trading_env, tmp_path, **to) as (client, _, mailbox):
        mailbox.refuse("550 5.1.1 <gone@x.io>: no such user")
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    [delivery] = alert["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)  # not sent twice to ops
    assert delivery["last_error"] == (
        "email: sent, but refused for gone@x.io: 550 5.1.1 <gone@x.io>: no such user"
    )
    assert alert["status"] == "partial"
    assert [recipients for recipients, _ in mailbox.messages] == [["ops@x.io"]]


async def sent_mentions(
    trading_env: dict[str, str], tmp_path: Path, channel: str
) -> dict[str, Any]:
    """What `channel`'s server received of a test alert saying MENTIONS."""
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        asked = {"channel": channel, "message": MENTIONS}
        answer = await client.post(TEST_ALERT, json=asked, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    assert answer.status_code == 202, answer.text
    assert alert["deliveries"][0]["status"] == "sent", alert
    [received] = fake.received[channel]
    sent: dict[str, Any] = received
    return sent


async def test_an_alerts_text_shows_on_slack_as_written(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    body = await sent_mentions(trading_env, tmp_path, "slack")
    assert slack_shown(body["text"]) == (f"[INFO] Test alert\n{MENTIONS}", [])  # no @channel


async def test_an_alerts_text_pings_nobody_on_discord(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    body = await sent_mentions(trading_env, tmp_path, "discord")
    assert body["content"] == f"[INFO] Test alert\n{MENTIONS}"
    assert discord_pings(body) == []


async def test_an_error_answer_with_control_characters_is_recorded_without_them(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """A NUL in the answer's text: PostgreSQL refuses it in TEXT, so stored as it came the
    delivery would stay pending and be sent again at every claim."""
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        fake.fail("webhook", "400-binary")
        await client.post(TEST_ALERT, json={"channel": "webhook"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    [delivery] = alert["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1), delivery
    assert delivery["last_error"] == "webhook: HTTP 400: refused [31mred[0m\nline two\ttab"
    assert alert["status"] == "failed"


async def test_a_discord_webhook_url_as_discord_gives_it_is_used_on_a_pinned_api_version() -> None:
    """Discord's settings give `/api/webhooks/<id>/<token>`, which names no API version and is
    answered as v6 was: a 429's retry_after in milliseconds (500 for half a second), read as
    seconds a throttled alert would wait minutes. Sent on v10, it is half a second."""
    fake = FakeChannels()
    alert = AlertEvent(kind="test", severity="info", source="test", title="t", message="m")
    async with serve_app(build_app(fake)) as url, httpx.AsyncClient() as client:
        channel = DiscordChannel(client, f"{url}/api/webhooks/123/secret-token")
        fake.fail("discord", "429")
        with pytest.raises(ChannelError) as limited:
            await channel.send(alert)
        await channel.send(alert)
    assert fake.discord_paths == ["/api/v10/webhooks/123/secret-token"] * 2
    assert (limited.value.retryable, limited.value.retry_after) == (True, 0.5)
    assert len(fake.received["discord"]) == 1
