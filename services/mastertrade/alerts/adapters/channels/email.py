"""Email over SMTP with STARTTLS and AUTH (aiosmtplib); the TLS certificate is verified,
against EMAIL_TLS_CA_FILE when set (a private CA), else the system's CAs.

The TLS context is made by `build_tls_context` before the channel (build.py): a CA file that
cannot be read, or an EMAIL_FROM that is not an address (`check_sender`), turns the email
channel off with the reason, instead of stopping start-up.
Failures are sorted once, in `sort_failure`: what cannot succeed on a retry (STARTTLS or AUTH
not offered, any 5xx such as 535 for the login or 550 for every recipient, a certificate that
does not verify) fails at once with the server's reason; a 4xx, a refused connection or a
timeout is retried. A message refused for some recipients only reaches the others: `send` says
which were refused for good (5xx; the delivery records it), and raises PartlySentError when some
were refused for now (4xx: greylisting, a mailbox busy), whose retries go to those alone, so
nobody gets the alert twice. A recipient refused for now is tried again after `retry_later`
seconds (ALERT_EMAIL_RETRY_LATER_SECONDS), not the backoff's seconds: a greylisting server asks
the sender to come back after minutes (RFC 6647) and refuses an earlier retry again.
The message is From EMAIL_FROM (EMAIL_USER when not set: a relay such as SES, SendGrid or
Mailgun logs in with a user name that is no address, "apikey"). Every message carries a Date
and a Message-ID (RFC 5322; Gmail refuses one without a Message-ID), the Message-ID in the
sender's domain.
"""

from __future__ import annotations

import asyncio
import copy
import re
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr

import aiosmtplib

from mastertrade.alerts.adapters.channels.base import (
    ChannelConfigError,
    ChannelError,
    PartlySentError,
)
from mastertrade.core.messages import AlertEvent


class EmailConfigError(ChannelConfigError):
    """The email settings cannot work; the message names the setting and why."""


ADDRESS = re.compile(r"[^@\s<>,;:]+@[^@\s<>,;:]+")
"""local@domain, nothing around it: what a From must name (a relay's login, "apikey", is not)."""


def check_sender(sender: str, setting: str) -> str:
    """`sender` ("alerts@x.io" or "MasterTrade <alerts@x.io>") when it names one address, else
    EmailConfigError naming `setting`, the variable it came from."""
    found = getaddresses([sender])
    if len(found) != 1 or one_line(sender) != sender or not ADDRESS.fullmatch(found[0][1]):
        raise EmailConfigError(
            f"{setting} {sender!r} is not an e-mail address: set EMAIL_FROM to the address "
            "alerts come from, e.g. alerts@example.com or MasterTrade <alerts@example.com>"
        )
    return sender


def check_recipients(listed: str) -> list[str]:
    """The addresses of ALERT_EMAIL_TO ("ops@x.io, Risk <risk@x.io>"), or EmailConfigError
    naming the one that is no address: a list written with ";" would be one recipient the
    server refuses at every alert, while the channel shows as on."""
    recipients = [r.strip() for r in listed.split(",") if r.strip()]
    for recipient in recipients:
        found = getaddresses([recipient])
        if (
            len(found) != 1
            or one_line(recipient) != recipient
            or not ADDRESS.fullmatch(found[0][1])
        ):
            raise EmailConfigError(
                f"ALERT_EMAIL_TO {recipient!r} is not an e-mail address: list the addresses "
                "alerts go to separated by commas, e.g. ops@example.com, risk@example.com"
            )
    return recipients


def build_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying TLS context, trusting `ca_file` when given, else the system's CAs."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as error:  # a missing or unreadable file, or one with no certificate in it
        raise EmailConfigError(f"EMAIL_TLS_CA_FILE {ca_file!r} cannot be used: {error}") from error


def one_line(value: str) -> str:
    """`value` fit for a header: EmailMessage refuses line breaks (they would start a header
    of their own), so each becomes a space."""
    return " ".join(part.strip() for part in value.splitlines() if part.strip())


def message_domain(sender: str) -> str:
    """The domain of a Message-ID: the sender's address's, else this host's name (not
    `make_msgid`'s default, socket.getfqdn(), which may wait on DNS inside the event loop)."""
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2].strip() if "@" in address else ""
    return domain or socket.gethostname()


def describe_refusals(refused: dict[str, aiosmtplib.SMTPResponse]) -> str | None:
    """What to record of the recipients a sent message was refused for; None when none was."""
    if not refused:
        return None
    listed = "; ".join(f"{to}: {answer.code} {answer.message}" for to, answer in refused.items())
    return f"email: sent, but refused for {listed}"


def _transient(code: int) -> bool:
    return 400 <= code < 500


def sort_refusals(channel: EmailChannel, refused: dict[str, aiosmtplib.SMTPResponse]) -> str | None:
    """What `send` returns of the recipients a sent message was refused for; PartlySentError when
    some were refused for now (4xx), a retry sending to those only."""
    later = [to for to, answer in refused.items() if _transient(answer.code)]
    if not later:
        return describe_refusals(refused)
    final = {to: answer for to, answer in refused.items() if not _transient(answer.code)}
    said = describe_refusals(refused) or ""
    raise PartlySentError(
        said, channel.only(later), later, describe_refusals(final), channel.retry_later
    )


def sort_failure(error: Exception, retry_later: float) -> ChannelError:
    """The ChannelError for what aiosmtplib (or the socket under it) raised; recipients refused
    for now are tried again after `retry_later` seconds."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
        retryable = any(_transient(r.code) for r in error.recipients)
        later = retry_later if retryable else None
        return ChannelError(f"email: every recipient refused ({refused})", retryable, later)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return ChannelError(f"email: {error.code} {error.message}", _transient(error.code))
    if isinstance(error, ssl.SSLCertVerificationError):
        return ChannelError(f"email: the server's certificate does not verify: {error}", False)
    if isinstance(error, OSError):  # refused, reset, timed out (aiosmtplib's included)
        return ChannelError(f"email: {error!r}", retryable=True)
    # what is left is the server lacking something required: STARTTLS, AUTH, SMTPUTF8
    return ChannelError(f"email: {error}", retryable=False)


class EmailChannel:
    name = "email"

    def __init__(
        self,
        server: tuple[str, int],
        login: tuple[str, str],
        recipients: list[str],
        tls: ssl.SSLContext,
        timeout: float,
        *,
        sender: str | None = None,
        retry_later: float = 300.0,
    ) -> None:
        (self.host, self.port), (self.user, self.password) = server, login
        self.retry_later = retry_later  # seconds before a recipient refused for now is retried
        self.recipients, self.tls, self.timeout = recipients, tls, timeout
        self.sender = sender or self.user
        # whom this channel sends to: all the recipients, or those a retry is for (`only`)
        self.envelope = list(recipients)

    def only(self, recipients: list[str]) -> EmailChannel:
        """This channel sending to `recipients` alone, its messages still addressed To all."""
        narrowed = copy.copy(self)
        narrowed.envelope = list(recipients)
        return narrowed

    def build_message(self, alert: AlertEvent) -> EmailMessage:
        message = EmailMessage()
        message["From"] = one_line(self.sender)
        message["To"] = one_line(", ".join(self.recipients))
        message["Subject"] = one_line(f"[MasterTrade {alert.severity}] {alert.title}")
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=message_domain(self.sender))
        message.set_content(alert.message or alert.title)
        return message

    async def send(self, alert: AlertEvent) -> str | None:
        """Connect (STARTTLS, AUTH), send, and hang up without QUIT: once the server accepted
        the message, waiting for QUIT's answer could only turn a delivered alert into an attempt
        cut off at its time limit, and sent again. An attempt cut off (the time limit, a
        shutdown) drops the connection at once instead of saying QUIT and waiting for it.
        Returns which recipients the server refused, when it accepted the message for others
        (PartlySentError when a retry may reach some of them)."""
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, start_tls=True, username=self.user,
            password=self.password, tls_context=self.tls, timeout=self.timeout,
        )  # fmt: skip
        try:
            await client.connect()
            message = self.build_message(alert)
            refused, _ = await client.send_message(message, recipients=self.envelope)
        except BaseException as error:
            drop(client)
            if isinstance(error, (aiosmtplib.SMTPException, OSError)):
                raise sort_failure(error, self.retry_later) from error
            raise
        client.close()
        return sort_refusals(self, refused)


def drop(client: aiosmtplib.SMTP) -> None:
    """Close the connection at once, discarding whatever is still to be written."""
    if isinstance(transport := client.transport, asyncio.WriteTransport):
        transport.abort()
    client.close()
