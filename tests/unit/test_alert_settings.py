"""alert_system's settings: a blank credential leaves its channel off, a blank admin key means
no admin calls, and the daily report's time is a UTC time of day or "off"."""

from __future__ import annotations

from datetime import UTC, time

import pytest

from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.settings import SettingsError, load_settings

EVERY_CHANNEL = {
    "EMAIL_USER": "bot@x.io",
    "EMAIL_PASSWORD": "pw",
    "TELEGRAM_BOT_TOKEN": "1:t",
    "TELEGRAM_CHAT_ID": "-1",
    "DISCORD_WEBHOOK_URL": "https://discord.test/hook",
    "SLACK_WEBHOOK_URL": "https://slack.test/hook",
    "TWILIO_ACCOUNT_SID": "AC1",
    "TWILIO_AUTH_TOKEN": "t",
    "TWILIO_PHONE_NUMBER": "+1555",
    "TWILIO_TO_NUMBER": "+1556",
    "ALERT_WEBHOOK_URL": "https://hook.test",
    "ALERT_WEBHOOK_SECRET": "s",
}
# one credential of each channel, as an optional Secret key present but empty (or blank)
BLANKED = {
    "email": "EMAIL_PASSWORD",
    "telegram": "TELEGRAM_CHAT_ID",
    "discord": "DISCORD_WEBHOOK_URL",
    "slack": "SLACK_WEBHOOK_URL",
    "sms": "TWILIO_AUTH_TOKEN",
    "webhook": "ALERT_WEBHOOK_URL",
}


def settings(**environ: str) -> AlertSettings:
    return load_settings(AlertSettings, "alert_system", environ=environ)


def test_every_channel_is_on_when_configured() -> None:
    assert all(settings(**EVERY_CHANNEL).channels().values())


@pytest.mark.parametrize("blank", ["", "   "])
@pytest.mark.parametrize("channel", sorted(BLANKED))
def test_a_blank_credential_leaves_its_channel_and_only_it_off(channel: str, blank: str) -> None:
    on = settings(**{**EVERY_CHANNEL, BLANKED[channel]: blank}).channels()
    assert on == {name: name != channel for name in BLANKED}


def test_a_blank_admin_key_means_no_admin_key() -> None:
    assert settings(RISK_ADMIN_API_KEY_SHA256="").risk_admin_api_key_sha256 is None
    with pytest.raises(SettingsError, match="RISK_ADMIN_API_KEY_SHA256"):
        settings(RISK_ADMIN_API_KEY_SHA256="the-token-itself")


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("00:00", time(0, 0, tzinfo=UTC)),
        ("23:59", time(23, 59, tzinfo=UTC)),
        (" 07:30:15 ", time(7, 30, 15, tzinfo=UTC)),
        ("off", None),
        ("OFF", None),
        ("", None),
    ],
)
def test_the_daily_report_time_is_utc_or_off(text: str, at: time | None) -> None:
    assert settings(ALERT_DAILY_REPORT_TIME=text).daily_report_time() == at


@pytest.mark.parametrize("text", ["24:00", "7:30", "noon", "12:60"])
def test_a_wrong_daily_report_time_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(SettingsError, match=r'ALERT_DAILY_REPORT_TIME.*"HH:MM" in UTC, or "off"'):
        settings(ALERT_DAILY_REPORT_TIME=text)
