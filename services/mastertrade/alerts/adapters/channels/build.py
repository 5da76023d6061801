"""The configured channels, built from the settings (a channel is on when configured).

A channel whose configuration cannot work (an unreadable EMAIL_TLS_CA_FILE, an EMAIL_FROM that
is no address, a webhook or API URL that is not an http(s) URL naming a host) is left off, its
reason logged and kept in `Channels.errors` (GET /api/v1/status shows it): one bad channel
never stops the service, nor the other channels, from starting.

Each HTTP channel has an HTTP client, and so a connection pool, of its own: a channel whose
server hangs (accepts connections, never answers) holds its own connections only, never one
another channel waits for. `Channels.close` closes them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from email.utils import parseaddr

import httpx

from mastertrade.alerts.adapters.channels.base import Channel, ChannelConfigError
from mastertrade.alerts.adapters.channels.chat import DiscordChannel, SlackChannel, TelegramChannel
from mastertrade.alerts.adapters.channels.email import (
    EmailChannel,
    build_tls_context,
    check_recipients,
    check_sender,
)
from mastertrade.alerts.adapters.channels.sms import TwilioChannel
from mastertrade.alerts.adapters.channels.webhook import WebhookChannel
from mastertrade.alerts.settings import AlertSettings, url_problem

logger = logging.getLogger("mastertrade.alerts")


@dataclass
class Channels:
    """The channels that are on, why each configured one that is not is off, and the HTTP
    clients of those that are on (one each)."""

    on: dict[str, Channel] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, s: AlertSettings) -> httpx.AsyncClient:
        """A new HTTP client, with its own connection pool, for one channel."""
        made = httpx.AsyncClient(timeout=s.alert_send_timeout_seconds)
        self.clients.append(made)
        return made

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))


def _secret(value: object) -> str:
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text.strip()


def _url(s: AlertSettings, setting: str) -> str:
    """The URL of `setting` (its field's name), or ChannelConfigError saying what is wrong with
    it, and what to write (the setting's description), without the URL: a webhook's path is
    its credential."""
    url = _secret(getattr(s, setting))
    if problem := url_problem(url):
        described = AlertSettings.model_fields[setting].description
        example = f" ({described})" if described else ""
        raise ChannelConfigError(f"{setting.upper()} is not usable: {problem}{example}")
    return url


def _email(s: AlertSettings) -> EmailChannel:
    user = (s.email_user or "").strip()
    given = (s.email_from or "").strip()
    sender = check_sender(given or user, "EMAIL_FROM" if given else "EMAIL_USER (no EMAIL_FROM)")
    listed = (s.alert_email_to or "").strip() or parseaddr(sender)[1]
    recipients = check_recipients(listed)
    return EmailChannel(
        (s.email_host, s.email_port),
        (user, _secret(s.email_password)),
        recipients,
        build_tls_context(s.email_tls_ca_file),
        s.alert_send_timeout_seconds,
        sender=sender,
        retry_later=s.alert_email_retry_later_seconds,
    )


def _chat(s: AlertSettings, found: Channels, name: str) -> Channel:
    if name == "telegram":
        chat = (s.telegram_chat_id or "").strip()
        api, token = _url(s, "telegram_api_url"), _secret(s.telegram_bot_token)
        return TelegramChannel(found.client(s), api, token, chat)
    if name == "discord":
        return DiscordChannel(found.client(s), _url(s, "discord_webhook_url"))
    return SlackChannel(found.client(s), _url(s, "slack_webhook_url"))


def _build(s: AlertSettings, found: Channels, name: str) -> Channel:
    """The channel `name`; its URLs are checked before its client is made, so a channel left
    off has none."""
    if name == "email":
        return _email(s)
    if name == "sms":
        api = _url(s, "twilio_api_url")
        account = ((s.twilio_account_sid or "").strip(), _secret(s.twilio_auth_token))
        numbers = ((s.twilio_phone_number or "").strip(), (s.twilio_to_number or "").strip())
        return TwilioChannel(found.client(s), api, account, numbers)
    if name == "webhook":
        url = _url(s, "alert_webhook_url")
        return WebhookChannel(found.client(s), url, _secret(s.alert_webhook_secret))
    return _chat(s, found, name)


def build_channels(s: AlertSettings) -> Channels:
    found = Channels()
    for name, configured in s.channels().items():
        if not configured:
            continue
        try:
            found.on[name] = _build(s, found, name)
        except ChannelConfigError as error:
            logger.error("the %s channel is off: %s", name, error)
            found.errors[name] = str(error)
    return found
