"""Email over SMTP with STARTTLS and AUTH (aiosmtplib); the TLS certificate is verified,
against EMAIL_TLS_CA_FILE when set (a private CA), else the system's CAs."""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from mastertrade.alerts.adapters.channels.base import ChannelError
from mastertrade.core.messages import AlertEvent


class EmailChannel:
    name = "email"

    def __init__(
        self,
        server: tuple[str, int],
        login: tuple[str, str],
        recipients: list[str],
        ca_file: str | None,
        timeout: float,
    ) -> None:
        (self.host, self.port), (self.user, self.password) = server, login
        self.recipients, self.timeout = recipients, timeout
        self.tls = ssl.create_default_context(cafile=ca_file)

    async def send(self, alert: AlertEvent) -> None:
        message = EmailMessage()
        message["From"], message["To"] = self.user, ", ".join(self.recipients)
        message["Subject"] = f"[MasterTrade {alert.severity}] {alert.title}"
        message.set_content(alert.message or alert.title)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                start_tls=True,
                username=self.user,
                password=self.password,
                tls_context=self.tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as error:
            raise ChannelError(
                f"email: {error.code} {error.message}", error.code >= 400 and error.code < 500
            ) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise ChannelError(f"email: {error!r}", retryable=True) from error
