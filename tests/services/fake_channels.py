"""Local servers answering like the alert channels' real APIs, for the alert tests.

One HTTP app serves Telegram's Bot API (`/bot<token>/sendMessage`), a Discord webhook, a Slack
webhook, Twilio's Messages resource and a plain webhook receiver, each with its real success
and error answers; `fail` queues the next answers of a channel (e.g. Telegram's 429 with
`parameters.retry_after`, or one whose `parameters` or `retry_after` is not the documented
shape). A documented 429 ("429": Telegram's `parameters.retry_after`, Discord's `retry_after`,
Slack's `Retry-After` header; `retry_after` sets its seconds) holds its channel as the real
services do: every request before the wait is over is answered 429 again, with the time left.
Each channel's requests are timed as they arrive (`arrivals`, monotonic seconds). `hang` makes
a channel's server take requests and never answer (until `release`). The providers' length
limits are enforced: Telegram's 4096 UTF-16 code units ("Bad Request: message is too long"),
Discord's 2000 code points (50035), Twilio's Body of 1600 UTF-16 code units (21617).
Discord refuses an `allowed_mentions` it does not know, as the real API does, and
`discord_pings` says whom a message would notify; `slack_shown` says what Slack shows of a text
(its `&`, `<` and `>` are control characters there). The webhook receiver's queued "400-binary"
answers with control characters (NUL among them) in its body, as a broken proxy may.
An aiosmtpd server with STARTTLS (a self-signed certificate made by openssl for the test) and
AUTH stands in for SMTP; `Mailbox.refuse` queues answers to RCPT TO (550, 450; for one address
with `to`; bytes are sent as they are, e.g. a Latin-1 answer), `Mailbox.logins` are the logins
it takes, a message with no Date or Message-ID header is refused at DATA (as Gmail does), and
`smtp_server(starttls=False)` is a server that does not offer STARTTLS at all.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tests.infra import free_port

TOKEN, CHAT, SID, AUTH = "123:telegram-token", "-1001", "AC0123", "twilio-token"


@dataclass
class FakeChannels:
    received: dict[str, list[Any]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    discord_paths: list[str] = field(default_factory=list)  # where each Discord POST went
    # the seconds a channel's documented 429 asks to wait (Telegram's is a whole number)
    retry_after: dict[str, float] = field(
        default_factory=lambda: {"telegram": 1, "discord": 0.5, "slack": 1}
    )
    limited_until: dict[str, float] = field(default_factory=dict)  # monotonic
    # channel -> (requests, seconds): a fixed window, as Discord's webhooks allow 5 per 2 s
    windows: dict[str, tuple[int, float]] = field(default_factory=dict)
    window_state: dict[str, tuple[float, int]] = field(default_factory=dict)  # start, used
    arrivals: dict[str, list[float]] = field(default_factory=dict)  # monotonic, per request
    hanging: set[str] = field(default_factory=set)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, channel: str, *answers: str) -> None:
        self.failures.setdefault(channel, []).extend(answers)

    def next_failure(self, channel: str) -> str | None:
        queued = self.failures.get(channel, [])
        return queued.pop(0) if queued else None

    def got(self, channel: str, item: Any) -> None:
        self.received.setdefault(channel, []).append(item)

    def hang(self, channel: str) -> None:
        """`channel`'s server takes each request and answers none, until `release`."""
        self.hanging.add(channel)

    def release(self) -> None:
        self.released.set()

    async def arrived(self, channel: str) -> None:
        """Note a request to `channel`; one to a hanging channel waits here until released."""
        self.arrivals.setdefault(channel, []).append(time.monotonic())
        if channel in self.hanging:
            await self.released.wait()

    def limited(self, channel: str, failure: str | None) -> float | None:
        """The seconds left of `channel`'s 429 when this request is answered 429: a queued
        "429" starts the wait, and a request before it is over gets 429 again."""
        now = time.monotonic()
        if failure == "429":
            self.limited_until[channel] = now + self.retry_after[channel]
            return self.retry_after[channel]
        left = self.limited_until.get(channel, 0.0) - now
        return left if left > 0 else self._over_window(channel, now)

    def _over_window(self, channel: str, now: float) -> float | None:
        """The seconds until `channel`'s window resets when this request is one too many."""
        if channel not in self.windows:
            return None
        allowed, seconds = self.windows[channel]
        start, used = self.window_state.get(channel, (now, 0))
        if now - start >= seconds:
            start, used = now, 0
        if used >= allowed:
            self.window_state[channel] = start, used
            return start + seconds - now
        self.window_state[channel] = start, used + 1
        return None


def utf16_length(text: str) -> int:
    """The length Telegram and Twilio count: UTF-16 code units (an emoji beyond U+FFFF is 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# 429 answers of Telegram a proxy or a change could send (the documented one is "429"); they
# give no wait to honour, so they start none
TELEGRAM_429_PARAMETERS: dict[str, Any] = {
    "429-parameters-not-a-dict": [1],
    "429-retry-after-not-a-number": {"retry_after": "soon"},
}
TELEGRAM_LIMIT, DISCORD_LIMIT, TWILIO_LIMIT = 4096, 2000, 1600
SUPERGROUP = -1001234567890
"""The chat id Telegram names when the group alerts went to was upgraded to a supergroup."""


def _telegram_429(parameters: Any, seconds: int) -> Response:
    return JSONResponse(
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {seconds}",
            "parameters": parameters,
        },
        status_code=429,
    )


def _telegram(fake: FakeChannels, token: str, body: dict[str, Any]) -> Response:
    if token != TOKEN:
        return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
    failure = fake.next_failure("telegram")
    if (left := fake.limited("telegram", failure)) is not None:
        seconds = math.ceil(left)  # a whole number of seconds, as Telegram gives it
        return _telegram_429({"retry_after": seconds}, seconds)
    if failure in TELEGRAM_429_PARAMETERS:
        return _telegram_429(TELEGRAM_429_PARAMETERS[failure], 1)
    if (refusal := _telegram_refusal(body, failure)) is not None:
        return refusal
    fake.got("telegram", body)
    return JSONResponse({"ok": True, "result": {"message_id": 1, "text": body["text"]}})


def _telegram_refusal(body: dict[str, Any], failure: str | None) -> Response | None:
    """Telegram's 400 for a chat it does not know, a text over its limit, or a group upgraded
    to a supergroup (`failure`: its id is gone, and the answer names the new one)."""
    if failure == "400-upgraded-to-supergroup":
        upgraded = "Bad Request: group chat was upgraded to a supergroup chat"
        return JSONResponse({"ok": False, "error_code": 400, "description": upgraded,
                             "parameters": {"migrate_to_chat_id": SUPERGROUP}}, 400)  # fmt: skip
    if body.get("chat_id") != CHAT or not body.get("text"):
        return JSONResponse(
            {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, 400
        )
    if utf16_length(str(body["text"])) > TELEGRAM_LIMIT:
        return JSONResponse(
            {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}, 400
        )
    return None


DISCORD_MENTION_TYPES = {"everyone", "users", "roles"}
# a webhook receiver's error page with control characters in it (NUL, a bell, an ANSI colour)
BINARY_ANSWER = b"refused\x00\x07 \x1b[31mred\x1b[0m\r\nline two\ttab"


def _discord_refusal(body: dict[str, Any]) -> Response | None:
    """Discord's 400 for a content over 2000 characters (code points: its API counts them so),
    or an `allowed_mentions` that is not an object whose `parse` lists only mention types it
    knows; None when the body is fine."""
    if len(str(body.get("content", ""))) > DISCORD_LIMIT:
        too_long = {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
        return _invalid_form({"content": {"_errors": [too_long]}})
    if "allowed_mentions" not in body:
        return None
    allowed = body["allowed_mentions"]
    parse = allowed.get("parse", []) if isinstance(allowed, dict) else None
    if isinstance(parse, list) and all(kind in DISCORD_MENTION_TYPES for kind in parse):
        return None
    return _invalid_form({"allowed_mentions": {"_errors": [{"code": "MODEL_TYPE_CONVERT"}]}})


def _invalid_form(errors: dict[str, Any]) -> Response:
    return JSONResponse(
        {"code": 50035, "message": "Invalid Form Body", "errors": errors}, status_code=400
    )


def discord_pings(body: dict[str, Any]) -> list[str]:
    """The mentions in a webhook message's content that Discord would notify: all of them
    when `allowed_mentions` is absent, else those of the types its `parse` lists."""
    allowed = body.get("allowed_mentions")
    parse = set(allowed.get("parse", [])) if isinstance(allowed, dict) else DISCORD_MENTION_TYPES
    patterns = {"everyone": r"@(?:everyone|here)", "users": r"<@!?\d+>", "roles": r"<@&\d+>"}
    content = str(body.get("content", ""))
    return [found for kind in sorted(parse) for found in re.findall(patterns[kind], content)]


def slack_shown(text: str) -> tuple[str, list[str]]:
    """What Slack shows of a message's text, and the control sequences it read in it: each
    `<...>` is a link or a mention (`<!channel>` notifies everyone in the channel), and the
    entities &amp; &lt; &gt; stand for the characters themselves."""
    controls = re.findall(r"<[^<>]*>", text)
    shown = re.sub(r"<[^<>]*>", "", text)
    return shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"), controls


def build_app(fake: FakeChannels) -> FastAPI:
    app = FastAPI()

    @app.post("/bot{token}/sendMessage")
    async def telegram(token: str, request: Request) -> Response:
        await fake.arrived("telegram")
        return _telegram(fake, token, await request.json())

    @app.post("/api/webhooks/{webhook_id}/{token}")
    async def discord_unversioned(request: Request) -> Response:
        """Discord's webhook URL with no version: answered as API v6 was, retry_after in ms."""
        return await discord(request, milliseconds=True)

    @app.post("/api/v{version}/webhooks/{webhook_id}/{token}")
    @app.post("/discord/webhook")
    async def discord(request: Request, milliseconds: bool = False) -> Response:
        await fake.arrived("discord")
        fake.discord_paths.append(request.url.path)
        if (left := fake.limited("discord", fake.next_failure("discord"))) is not None:
            wait = round(left * 1000) if milliseconds else round(left, 3)
            return JSONResponse(
                {"message": "You are being rate limited.", "retry_after": wait, "global": False},
                status_code=429,
            )
        body = await request.json()
        if (refusal := _discord_refusal(body)) is not None:
            return refusal
        fake.got("discord", body)
        return Response(status_code=204)

    @app.post("/slack/webhook")
    async def slack(request: Request) -> Response:
        await fake.arrived("slack")
        failure = fake.next_failure("slack")
        if (left := fake.limited("slack", failure)) is not None:
            wait = str(math.ceil(left))  # Retry-After: whole seconds
            return PlainTextResponse("rate_limited", status_code=429, headers={"Retry-After": wait})
        if failure == "500":
            return PlainTextResponse("internal_error", status_code=500)
        body = await request.json()
        if "text" not in body:
            return PlainTextResponse("invalid_payload", status_code=400)
        fake.got("slack", body)
        return PlainTextResponse("ok")

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
    async def twilio(sid: str, request: Request) -> Response:
        await fake.arrived("sms")
        expected = "Basic " + base64.b64encode(f"{SID}:{AUTH}".encode()).decode()
        if sid != SID or request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        form = dict(parse_qsl((await request.body()).decode()))
        if not str(form.get("To", "")).startswith("+"):
            return JSONResponse(
                {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, 400
            )
        if utf16_length(form.get("Body", "")) > TWILIO_LIMIT:
            return JSONResponse(
                {"code": 21617, "status": 400, "more_info": "https://www.twilio.com/docs/errors/21617",
                 "message": "The concatenated message body exceeds the 1600 character limit"},
                status_code=400,
            )  # fmt: skip
        fake.got("sms", form)
        return JSONResponse({"sid": "SM1", "status": "queued", "body": form["Body"]}, 201)

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        await fake.arrived("webhook")
        if fake.next_failure("webhook") == "400-binary":
            return Response(BINARY_ANSWER, status_code=400, media_type="text/plain")
        fake.got("webhook", (dict(request.headers), await request.body()))
        return Response(status_code=200)

    return app


REQUIRED_HEADERS = ("Date", "From", "Message-ID")
"""Headers without which a message is refused at DATA: RFC 5322 requires Date and From, and
Gmail refuses a message without a Message-ID ("550-5.7.1 Messages missing a valid Message-ID
header are not accepted")."""


class Mailbox:
    """An aiosmtpd handler keeping what it accepted (with the envelope's sender, `senders`), the
    logins in `logins` allowed to AUTH; `refuse` queues the answers to the next RCPT TOs (e.g.
    "550 5.1.1 No such user"), or to the next ones for one address (`to`). An answer given as
    bytes is sent as it is: a server may answer in Latin-1."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.senders: list[str | None] = []  # MAIL FROM of each message accepted
        self.refusals: list[str | bytes] = []
        self.refusals_to: dict[str, list[str | bytes]] = {}
        self.recipients_tried = 0
        self.tried: list[str] = []  # each RCPT TO's address, in order
        self.data_delay = 0.0  # seconds before the answer to DATA (a slow server)
        self.logins = {(b"bot@x.io", b"pw")}

    def refuse(self, *answers: str | bytes, to: str | None = None) -> None:
        if to is None:
            self.refusals.extend(answers)
        else:
            self.refusals_to.setdefault(to, []).extend(answers)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str | bytes:
        del server, session, options
        self.recipients_tried += 1
        self.tried.append(address)
        if queued := self.refusals_to.get(address):
            return queued.pop(0)
        if self.refusals:
            return self.refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        del server, session, envelope, mechanism
        ok = isinstance(data, LoginPassword) and (data.login, data.password) in self.logins
        # handled=False: aiosmtpd then answers a failure with 535, as real servers do (its
        # default, handled=True, sends nothing and leaves the client waiting)
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        del server, session
        await asyncio.sleep(self.data_delay)
        content = envelope.content or b""
        raw = content.encode() if isinstance(content, str) else bytes(content)
        headers = BytesHeaderParser().parsebytes(raw)
        missing = [name for name in REQUIRED_HEADERS if headers[name] is None]
        if missing:
            return f"550 5.7.1 Messages missing a valid {missing[0]} header are not accepted"
        self.messages.append((list(envelope.rcpt_tos), raw))
        self.senders.append(envelope.mail_from)
        return "250 OK"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (openssl), and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextmanager
def smtp_server(folder: Path, starttls: bool = True) -> Iterator[tuple[Mailbox, int, Path]]:
    """STARTTLS required before AUTH, AUTH required before mail; yields (mailbox, port, CA).
    With `starttls=False` the server offers no STARTTLS (and requires no AUTH: a client that
    insists on STARTTLS, as ours does, stops before it)."""
    cert, key = make_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox, port = Mailbox(), free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context if starttls else None,
        require_starttls=starttls,
        authenticator=mailbox.authenticate,
        auth_required=starttls,
    )
    controller.start()
    try:
        yield mailbox, port, cert
    finally:
        controller.stop()
