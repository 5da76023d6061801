"""Settings of alert_system: the seed's SMTP server and channel credentials, plus recipients,
API endpoints (overridable for tests and proxies), retries, dedup, rate limits, how long the
history is kept, the daily report's time and the admin token of the test alert.

The webhook URLs (Discord, Slack, ours) are secrets, their path being the webhook's credential.
They and the API URLs (Telegram's, Twilio's) are checked when the channels are built
(adapters/channels/build.py, with `url_problem`): one that is not an absolute http(s) URL naming
a host would fail every alert on its channel, so the channel is off, saying why (without the
URL) in GET /api/v1/status, and the service and the other channels start all the same; a blank
one leaves its channel off.
"""

from __future__ import annotations

from datetime import time
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from mastertrade.alerts.domain.report import parse_report_time
from mastertrade.core.admin_token import AdminTokenHash
from mastertrade.core.settings import ServiceSettings
from mastertrade_model.settings import EmailSettings

CHANNEL_SETTINGS: dict[str, tuple[str, ...]] = {
    "email": ("EMAIL_USER", "EMAIL_PASSWORD"),
    "telegram": ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"),
    "discord": ("DISCORD_WEBHOOK_URL",),
    "slack": ("SLACK_WEBHOOK_URL",),
    "sms": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER", "TWILIO_TO_NUMBER"),
    "webhook": ("ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET"),
}
"""The settings each channel needs, every one set and not blank for it to be on."""


def url_problem(url: str) -> str | None:
    """What keeps `url` from being a URL to POST to (absolute, http or https, naming a host),
    said without the URL itself; None when there is nothing."""
    if any(character.isspace() or not character.isprintable() for character in url):
        return "not a URL: it has a space or a control character in it"
    try:
        parts = urlsplit(url)
        _ = parts.port  # read to check it: ValueError when not a number from 0 to 65535
    except ValueError:  # its text may quote the URL
        return "not a URL: its host or port cannot be read"
    if not parts.scheme:
        return "no http:// or https:// scheme"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http:// or https:// URL"
    if not parts.hostname:
        return "no host"
    return None


def _given(value: str | SecretStr | None) -> bool:
    """Set and not blank: the chart maps the channels' Secret keys as optional, and a key that
    is there but empty arrives as an empty string, which must leave the channel off."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return bool(text and text.strip())


class AlertSettings(ServiceSettings, EmailSettings):
    """EMAIL_HOST, EMAIL_PORT, EMAIL_FROM and ALERT_EMAIL_TO are the model's `EmailSettings`;
    each channel is on when what it needs is set and not blank (see `channels()`)."""

    email_user: str | None = None
    email_password: SecretStr | None = None
    email_tls_ca_file: str | None = Field(
        default=None, description="a CA bundle to verify the SMTP server's certificate with"
    )
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = Field(default=None, description="the chat to post to")
    telegram_api_url: str = Field(default="https://api.telegram.org")
    discord_webhook_url: SecretStr | None = Field(
        default=None,
        description="Discord's webhook URL, e.g. https://discord.com/api/webhooks/<id>/<token>",
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack's webhook URL, e.g. https://hooks.slack.com/services/T000/B000/XXXX",
    )
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_phone_number: str | None = None
    twilio_to_number: str | None = Field(default=None, description="the number SMS go to")
    twilio_api_url: str = Field(default="https://api.twilio.com")
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="a URL to POST alerts to, e.g. https://ops.example.com/alerts"
    )
    alert_webhook_secret: SecretStr | None = Field(
        default=None, description="the HMAC key of X-MasterTrade-Signature"
    )
    alert_dedup_seconds: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="a repeat of a dedup key within this many seconds of the one before "
        "(delivered or dropped) is dropped; a key naming one event (an order's fill) is "
        "dropped however late it comes again",
    )
    alert_history_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="alerts older than this many days are removed with their deliveries "
        "(at start-up, then hourly), except one still being delivered",
    )
    alert_rate_limit_per_minute: int = Field(
        default=20,
        ge=1,
        le=10000,
        description="deliveries per channel per minute; one over it is recorded rate_limited "
        "and told in the channel's digest (one a minute); critical alerts and the daily report "
        "always go",
    )
    alert_max_attempts: int = Field(
        default=30,
        ge=1,
        le=1000,
        description="failed tries per delivery before it is marked failed (a refusal for "
        "sending too often, HTTP 429, does not count: the channel's wait is honoured instead)",
    )
    alert_retry_for_seconds: float = Field(
        default=1800.0,
        ge=0,
        le=86_400,
        description="how long after its first try a delivery may still be retried (the delays "
        "double from ALERT_RETRY_BASE_SECONDS up to a minute), so an alert outlives a channel's "
        "outage of that long; 0: never retried",
    )
    alert_retry_base_seconds: float = Field(
        default=1.0, gt=0, le=60, description="first retry delay; doubles after each failure"
    )
    alert_email_retry_later_seconds: float = Field(
        default=300.0,
        gt=0,
        le=900,
        description="how long an e-mail recipient refused for now (a 4xx such as greylisting, "
        "which asks the sender to come back after minutes) waits before it is tried again",
    )
    alert_send_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="time limit of one delivery attempt; a delivery's lease runs 25 s beyond it",
    )
    alert_daily_report_time: str = Field(
        default="00:00",
        description='UTC time of the daily report, "HH:MM" (or "HH:MM:SS"); "off" sends none',
    )
    alert_daily_report_settle_seconds: float = Field(
        default=120.0, ge=0, le=3600,
        description="how long after ALERT_DAILY_REPORT_TIME the report is written, so that a "
        "fill stamped before that instant but committed just after it is in the report",
    )  # fmt: skip
    risk_admin_api_key_sha256: AdminTokenHash = Field(
        default=None,
        description="the SHA-256 of the admin bearer token (the risk manager's setting, so one "
        "token serves both) that the test alert needs",
    )

    @field_validator("risk_admin_api_key_sha256", mode="before")
    @classmethod
    def _blank_key(cls, value: object) -> object:
        # a blank key (an optional Secret key present but empty) is no key: admin calls are off
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("alert_daily_report_time")
    @classmethod
    def _report_time(cls, value: str) -> str:
        parse_report_time(value)  # raises ValueError with what to write instead
        return value.strip()

    def daily_report_time(self) -> time | None:
        """When the daily report goes out (UTC), None when it is off."""
        return parse_report_time(self.alert_daily_report_time)

    def channels(self) -> dict[str, bool]:
        """Which channels have what they need to send (CHANNEL_SETTINGS)."""
        return {
            name: all(_given(getattr(self, variable.lower())) for variable in variables)
            for name, variables in CHANNEL_SETTINGS.items()
        }
