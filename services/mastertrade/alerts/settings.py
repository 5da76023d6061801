"""Settings of alert_system: EMAIL_HOST, EMAIL_PORT and the channels' credentials."""

from __future__ import annotations

from pydantic import SecretStr

from mastertrade.core.settings import ServiceSettings
from mastertrade_model.settings import EmailSettings


class AlertSettings(ServiceSettings, EmailSettings):
    """The seed's SMTP server (EMAIL_HOST, EMAIL_PORT: the model's `EmailSettings`) and channel
    credentials (each channel optional)."""

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
