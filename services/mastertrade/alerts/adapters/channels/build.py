"""The configured channels, built from the settings (a channel is on when configured).

A channel whose configuration cannot work (an unreadable EMAIL_TLS_CA_FILE) is left off, its
reason logged and kept in `Channels.errors` (GET /api/v1/status shows it): one bad channel
never stops the service, nor the other channels, from starting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx

from mastertrade.alerts.adapters.channels.base import Channel
from mastertrade.alerts.adapters.channels.chat import DiscordChannel, SlackChannel, TelegramChannel
from mastertrade.alerts.adapters.channels.email import (
    EmailChannel,
    EmailConfigError,
    build_tls_context,
)
from mastertrade.alerts.adapters.channels.sms import TwilioChannel
from mastertrade.alerts.adapters.channels.webhook import WebhookChannel
from mastertrade.alerts.settings import AlertSettings

logger = logging.getLogger("mastertrade.alerts")


@dataclass
class Channels:
    """The channels that are on, and why each configured one that is not is off."""

    on: dict[str, Channel] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _secret(value: object) -> str:
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text.strip()


def _email(s: AlertSettings) -> EmailChannel:
    user = (s.email_user or "").strip()
    listed = (s.alert_email_to or "").strip() or user
    recipients = [r.strip() for r in listed.split(",") if r.strip()]
    return EmailChannel(
        (s.email_host, s.email_port),
        (user, _secret(s.email_password)),
        recipients,
        build_tls_context(s.email_tls_ca_file),
        s.alert_send_timeout_seconds,
    )


def _chat(s: AlertSettings, client: httpx.AsyncClient, name: str) -> Channel:
    if name == "telegram":
        chat = (s.telegram_chat_id or "").strip()
        return TelegramChannel(client, s.telegram_api_url, _secret(s.telegram_bot_token), chat)
    if name == "discord":
        return DiscordChannel(client, _secret(s.discord_webhook_url))
    return SlackChannel(client, _secret(s.slack_webhook_url))


def _build(s: AlertSettings, client: httpx.AsyncClient, name: str) -> Channel:
    if name == "email":
        return _email(s)
    if name == "sms":
        account = ((s.twilio_account_sid or "").strip(), _secret(s.twilio_auth_token))
        numbers = ((s.twilio_phone_number or "").strip(), (s.twilio_to_number or "").strip())
        return TwilioChannel(client, s.twilio_api_url, account, numbers)
    if name == "webhook":
        url = _secret(s.alert_webhook_url)
        return WebhookChannel(client, url, _secret(s.alert_webhook_secret))
    return _chat(s, client, name)


def build_channels(s: AlertSettings, client: httpx.AsyncClient) -> Channels:
    found = Channels()
    for name, configured in s.channels().items():
        if not configured:
            continue
        try:
            found.on[name] = _build(s, client, name)
        except EmailConfigError as error:
            logger.error("the %s channel is off: %s", name, error)
            found.errors[name] = str(error)
    return found
