"""alert_system's messages as each channel's API reads them, on the local servers of
test_alerts.py: an e-mail's Date and Message-ID, its From (EMAIL_FROM), a recipient refused among
several (for good, or for now and retried alone), an alert's text shown on Slack as written and
pinging nobody on Discord, a long alert cut to each service's limit, and an error answer with
control characters (NUL among them, which PostgreSQL cannot store) or in Latin-1 (which is no
UTF-8) recorded all the same."""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.alerts.adapters.channels.chat import DiscordChannel
from mastertrade.alerts.domain.delivery import clean_error
from mastertrade.alerts.domain.events import clip
from mastertrade.core.messages import AlertEvent
from tests.services.fake_channels import (
    FakeChannels,
    build_app,
    discord_pings,
    slack_shown,
    utf16_length,
)
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


async def test_an_email_comes_from_email_from_when_the_login_is_no_address(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """A relay (SES, SendGrid, Mailgun) logs in with a user name that is no address: the
    message is From EMAIL_FROM, its envelope's sender and Message-ID that address's."""
    relay = {"EMAIL_USER": "apikey", "EMAIL_FROM": "MasterTrade <alerts@x.io>"}
    async with alert_system(trading_env, tmp_path, **relay) as (client, _, mailbox):
        mailbox.logins.add((b"apikey", b"pw"))
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    assert alert["deliveries"][0]["status"] == "sent", alert
    [(recipients, raw)] = mailbox.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["From"]) == "MasterTrade <alerts@x.io>"
    assert mailbox.senders == ["alerts@x.io"] and recipients == ["ops@x.io"]
    assert re.fullmatch(r"<[^@<>\s]+@x\.io>", str(message["Message-ID"]))


LATIN_1_REFUSAL = "550 5.1.1 <gone@x.io>: Empfänger unbekannt".encode("latin-1")


@pytest.mark.parametrize(
    ("to", "outcome"),
    [
        ("ops@x.io, gone@x.io", ("sent", 1, "email: sent, but refused for gone@x.io: ")),
        ("gone@x.io", ("failed", 1, "email: every recipient refused (gone@x.io: ")),
    ],
)
async def test_an_smtp_refusal_in_latin_1_is_recorded_and_the_alert_not_sent_again(
    trading_env: dict[str, str], tmp_path: Path, to: str, outcome: tuple[str, int, str]
) -> None:
    """aiosmtplib reads an answer that is not UTF-8 with surrogateescape ("Empf\\udce4nger"),
    which PostgreSQL's driver cannot encode: recorded as it came, the outcome would not be
    stored, and the delivery, left pending, sent again at every lease."""
    async with alert_system(trading_env, tmp_path, ALERT_EMAIL_TO=to) as (client, _, mailbox):
        mailbox.refuse(LATIN_1_REFUSAL, to="gone@x.io")
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    [delivery] = alert["deliveries"]
    status, attempts, said = outcome
    assert (delivery["status"], delivery["attempts"]) == (status, attempts), delivery
    assert delivery["last_error"].startswith(said)
    assert "550 5.1.1 <gone@x.io>: Empf\\xe4nger unbekannt" in delivery["last_error"]
    assert len(mailbox.messages) == (1 if status == "sent" else 0)


GREYLISTED = "450 4.7.1 <busy@x.io>: greylisted, try again later"
GONE = "550 5.1.1 <gone@x.io>: no such user"


async def test_a_recipient_refused_for_now_gets_the_retry_alone(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """Among three recipients one is accepted, one greylisted (450, once), one unknown (550):
    the retry goes to the greylisted one alone, after ALERT_EMAIL_RETRY_LATER_SECONDS (a
    greylisting server refuses a retry sooner), not after the backoff's 0.1 s; the others get
    the alert once, and the unknown one is what the delivery records."""
    to = {"ALERT_EMAIL_TO": "ops@x.io, busy@x.io, gone@x.io",
          "ALERT_EMAIL_RETRY_LATER_SECONDS": "1.5"}  # fmt: skip
    async with alert_system(trading_env, tmp_path, **to) as (client, _, mailbox):
        mailbox.refuse(GREYLISTED, to="busy@x.io")
        mailbox.refuse(GONE, to="gone@x.io")
        started = time.monotonic()
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
        took = time.monotonic() - started
    assert took >= 1.5
    [delivery] = alert["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2), delivery
    assert delivery["last_error"] == f"email: sent, but refused for gone@x.io: {GONE}"
    assert alert["status"] == "partial"
    assert mailbox.tried == ["ops@x.io", "busy@x.io", "gone@x.io", "busy@x.io"]
    assert [recipients for recipients, _ in mailbox.messages] == [["ops@x.io"], ["busy@x.io"]]
    for _, raw in mailbox.messages:  # the retry is the same message, addressed to all
        assert email.message_from_bytes(raw)["To"] == "ops@x.io, busy@x.io, gone@x.io"


async def test_a_recipient_refused_for_now_every_time_leaves_the_alert_sent_to_the_others(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    to = {"ALERT_EMAIL_TO": "ops@x.io, busy@x.io"}
    async with alert_system(trading_env, tmp_path, **to) as (client, _, mailbox):
        mailbox.refuse(GREYLISTED, GREYLISTED, GREYLISTED, to="busy@x.io")
        await client.post(TEST_ALERT, json={"channel": "email"}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    [delivery] = alert["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 3), delivery  # 3 at most
    assert delivery["last_error"] == (
        "email: sent to some recipients, not to the others: email: every recipient refused "
        f"(busy@x.io: {GREYLISTED})"
    )
    assert alert["status"] == "partial"
    assert mailbox.tried == ["ops@x.io", "busy@x.io", "busy@x.io", "busy@x.io"]
    assert [recipients for recipients, _ in mailbox.messages] == [["ops@x.io"]]


async def test_a_long_alert_is_cut_to_each_services_limit_and_delivered(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """4000 characters with emoji: Telegram counts 4096 UTF-16 code units (an emoji is two),
    Twilio 1600 of them, Discord 2000 code points; each fake refuses more, as the service
    does. The text is cut to fit, ending with "…"."""
    long = "📈 BTC " * 666  # 3996 code points, 4662 UTF-16 code units
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        await client.post(TEST_ALERT, json={"message": long}, headers=ADMIN)
        [alert] = await settled(client, 1, timeout=10)
    deliveries = {d["channel"]: (d["status"], d["attempts"]) for d in alert["deliveries"]}
    assert deliveries == dict.fromkeys(deliveries, ("sent", 1)) and len(deliveries) == 6
    telegram = fake.received["telegram"][0]["text"]
    discord = fake.received["discord"][0]["content"]
    sms = fake.received["sms"][0]["Body"]
    assert 4095 <= utf16_length(telegram) <= 4096 and len(discord) == 2000
    assert 1599 <= utf16_length(sms) <= 1600
    for text in (telegram, discord, sms):
        assert text.startswith("[INFO] Test alert\n📈 BTC 📈") and text.endswith("…")
    assert fake.received["slack"][0]["text"] == f"[INFO] Test alert\n{long}"  # whole


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("😀" * 3000, "😀" * 2047),  # 4094 code units kept, and the "…"
        ("a" + "😀" * 3000, "a" + "😀" * 2047),  # 4095: the next emoji would be cut in half
        ("😀" * 2048, "😀" * 2048),  # 4096 exactly: as it is
    ],
)
def test_a_text_is_cut_by_utf16_code_units_never_inside_a_character(text: str, kept: str) -> None:
    cut = clip(text, 4096, utf16=True)
    assert cut == (kept if kept == text else f"{kept}…")
    assert utf16_length(cut) <= 4096


def test_an_error_text_is_recorded_as_utf_8_whatever_the_server_sent() -> None:
    """A byte surrogateescape kept is shown as that byte; any other lone surrogate as itself."""
    said = "550 Empf\udce4nger\x00 \ud83d 😀"
    assert clean_error(said) == "550 Empf\\xe4nger \\ud83d 😀"


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
        await asyncio.sleep(0.5)  # Discord answers 429 again until its wait is over
        await channel.send(alert)
    assert fake.discord_paths == ["/api/v10/webhooks/123/secret-token"] * 2
    assert (limited.value.retryable, limited.value.retry_after) == (True, 0.5)
    assert len(fake.received["discord"]) == 1
