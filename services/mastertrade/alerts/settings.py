"""Settings of alert_system: the seed's SMTP server and channel credentials, plus recipients,
API endpoints (overridable for tests and proxies), retries, dedup and rate limits."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mastertrade.core.settings import ServiceSettings
from mastertrade_model.settings import EmailSettings


class AlertSettings(ServiceSettings, EmailSettings):
    """EMAIL_HOST and EMAIL_PORT are the model's `EmailSettings`; each channel is on when what it
    needs is set (see `channels()`)."""

    email_user: str | None = None
    email_password: SecretStr | None = None
    alert_email_to: str | None = Field(
        default=None, description="comma-separated recipients (default: EMAIL_USER)"
    )
    email_tls_ca_file: str | None = Field(
        default=None, description="a CA bundle to verify the SMTP server's certificate with"
    )
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = Field(default=None, description="the chat to post to")
    telegram_api_url: str = Field(default="https://api.telegram.org", pattern=r"^https?://")
    discord_webhook_url: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_phone_number: str | None = None
    twilio_to_number: str | None = Field(default=None, description="the number SMS go to")
    twilio_api_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://")
    alert_webhook_url: str | None = Field(default=None, description="a URL to POST alerts to")
    alert_webhook_secret: SecretStr | None = Field(
        default=None, description="the HMAC key of X-MasterTrade-Signature"
    )
    alert_dedup_seconds: float = Field(
        default=300, ge=0, le=86400, description="repeats of a dedup key within this are dropped"
    )
    alert_rate_limit_per_minute: int = Field(
        default=20, ge=1, le=10000, description="deliveries per channel per minute"
    )
    alert_max_attempts: int = Field(
        default=5, ge=1, le=20, description="tries per delivery before it is marked failed"
    )
    alert_retry_base_seconds: float = Field(
        default=1.0, gt=0, le=60, description="first retry delay; doubles after each failure"
    )
    alert_send_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="timeout of one delivery attempt"
    )

    def channels(self) -> dict[str, bool]:
        """Which channels have what they need to send."""
        return {
            "email": bool(self.email_user and self.email_password),
            "telegram": bool(self.telegram_bot_token and self.telegram_chat_id),
            "discord": self.discord_webhook_url is not None,
            "slack": self.slack_webhook_url is not None,
            "sms": bool(
                self.twilio_account_sid
                and self.twilio_auth_token
                and self.twilio_phone_number
                and self.twilio_to_number
            ),
            "webhook": bool(self.alert_webhook_url and self.alert_webhook_secret),
        }
