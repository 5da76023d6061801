"""Settings of alert_system: EMAIL_HOST, EMAIL_PORT and the channels' credentials."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mastertrade.core.settings import ServiceSettings


class AlertSettings(ServiceSettings):
    """The seed's SMTP server and channel credentials (each channel optional)."""

    email_host: str = Field(default="smtp.gmail.com", min_length=1, description="a host name")
    email_port: int = Field(default=587, ge=1, le=65535, description="a TCP port, 1 to 65535")
    email_user: str | None = None
    email_password: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    discord_webhook_url: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_phone_number: str | None = None

    def channels(self) -> dict[str, bool]:
        """Which channels have what they need to send."""
        return {
            "email": bool(self.email_user and self.email_password),
            "telegram": self.telegram_bot_token is not None,
            "discord": self.discord_webhook_url is not None,
            "slack": self.slack_webhook_url is not None,
            "sms": bool(self.twilio_account_sid and self.twilio_auth_token),
        }
