"""The configured channels, built from the settings (a channel is on when configured)."""

from __future__ import annotations

import httpx

from mastertrade.alerts.adapters.channels.base import Channel
from mastertrade.alerts.adapters.channels.chat import DiscordChannel, SlackChannel, TelegramChannel
from mastertrade.alerts.adapters.channels.email import EmailChannel
from mastertrade.alerts.adapters.channels.sms import TwilioChannel
from mastertrade.alerts.adapters.channels.webhook import WebhookChannel
from mastertrade.alerts.settings import AlertSettings


def _secret(value: object) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _email(s: AlertSettings) -> EmailChannel:
    user = s.email_user or ""
    recipients = [r.strip() for r in (s.alert_email_to or user).split(",") if r.strip()]
    return EmailChannel(
        (s.email_host, s.email_port),
        (user, _secret(s.email_password)),
        recipients,
        s.email_tls_ca_file,
        s.alert_send_timeout_seconds,
    )


def build_channels(s: AlertSettings, client: httpx.AsyncClient) -> dict[str, Channel]:
    on = s.channels()
    found: dict[str, Channel] = {}
    if on["email"]:
        found["email"] = _email(s)
    if on["telegram"]:
        found["telegram"] = TelegramChannel(
            client, s.telegram_api_url, _secret(s.telegram_bot_token), s.telegram_chat_id or ""
        )
    if on["discord"]:
        found["discord"] = DiscordChannel(client, _secret(s.discord_webhook_url))
    if on["slack"]:
        found["slack"] = SlackChannel(client, _secret(s.slack_webhook_url))
    if on["sms"]:
        account = (s.twilio_account_sid or "", _secret(s.twilio_auth_token))
        numbers = (s.twilio_phone_number or "", s.twilio_to_number or "")
        found["sms"] = TwilioChannel(client, s.twilio_api_url, account, numbers)
    if on["webhook"]:
        found["webhook"] = WebhookChannel(
            client, s.alert_webhook_url or "", _secret(s.alert_webhook_secret)
        )
    return found
