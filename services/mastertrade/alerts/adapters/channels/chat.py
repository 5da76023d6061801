"""Telegram (Bot API sendMessage), Discord and Slack incoming webhooks.

An alert's text is shown as written and notifies nobody: Telegram's is plain text (no
parse_mode); Discord's goes with no mention allowed (`allowed_mentions: {parse: []}`), so an
`@everyone` in it pings nobody; Slack's has its control characters escaped (`slack_escape`), so
a `<!channel>` in it is text, not a mention, and a `<` in a price is not the start of a link.
A text longer than the service takes is cut to fit (`clip`, ending with "…"): Telegram's 4096
counted in UTF-16 code units (an emoji is two), Discord's 2000 in code points (its API counts
them so); Slack takes 40,000, more than an alert can be.
"""

from __future__ import annotations

from typing import Any

import httpx

from mastertrade.alerts.adapters.channels.base import (
    ChannelError,
    check_answer,
    post,
    read_seconds,
)
from mastertrade.alerts.domain.events import clip, render_text
from mastertrade.core.messages import AlertEvent


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class TelegramChannel:
    """POST {api}/bot<token>/sendMessage {chat_id, text}; errors are {ok: false, error_code,
    description, parameters: {retry_after, migrate_to_chat_id}}: the latter when the group was
    upgraded to a supergroup, whose new id the delivery's error names."""

    name = "telegram"
    limit = 4096

    def __init__(self, client: httpx.AsyncClient, api_url: str, token: str, chat_id: str) -> None:
        self.client, self.url, self.chat_id = client, f"{api_url.rstrip('/')}/bot{token}", chat_id

    async def send(self, alert: AlertEvent) -> None:
        payload = {"chat_id": self.chat_id, "text": clip(render_text(alert), self.limit, True)}
        response = await post(self.name, self.client, f"{self.url}/sendMessage", json=payload)
        body = _json(response)
        parameters = body.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        if (moved := parameters.get("migrate_to_chat_id")) is not None:
            raise ChannelError(f"telegram: the group was upgraded to a supergroup, whose chat id "
                               f"is {str(moved)[:32]}: set TELEGRAM_CHAT_ID={str(moved)[:32]}",
                               False)  # fmt: skip
        check_answer(self.name, response, read_seconds(parameters.get("retry_after")))
        if body.get("ok") is not True:
            raise ChannelError(f"telegram: {body.get('description', 'not ok')}", False)


def slack_escape(text: str) -> str:
    """`text` as Slack shows it literally: `&`, `<` and `>` mark its links and mentions
    (`<https://x|label>`, `<!channel>`), so each is sent as its entity, `&` first."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


DISCORD_API = "/api/v10/webhooks/"


def discord_versioned(webhook_url: str) -> str:
    """The webhook URL on a pinned API version. The URL Discord's settings give,
    `/api/webhooks/<id>/<token>`, names no version, and is answered as the deprecated v6 was:
    its 429's retry_after in milliseconds (discord-api-docs #4722), which read as seconds would
    hold a throttled alert for minutes. A URL that names a version (or is not Discord's) is
    left as it is."""
    return webhook_url.replace("/api/webhooks/", DISCORD_API, 1)


class DiscordChannel:
    """POST <webhook> {content, allowed_mentions}; 204 on success, 429 {retry_after (seconds)}."""

    name = "discord"
    limit = 2000

    def __init__(self, client: httpx.AsyncClient, webhook_url: str) -> None:
        self.client, self.url = client, discord_versioned(webhook_url)

    async def send(self, alert: AlertEvent) -> None:
        # parse nothing: no @everyone, @here, user or role in the text notifies anyone
        text = clip(render_text(alert), self.limit)
        payload = {"content": text, "allowed_mentions": {"parse": []}}
        response = await post(self.name, self.client, self.url, json=payload)
        retry_after = _json(response).get("retry_after") if response.status_code == 429 else None
        check_answer(self.name, response, read_seconds(retry_after))


class SlackChannel:
    """POST <webhook> {text}; 200 "ok", 4xx with a reason such as invalid_payload, 429."""

    name = "slack"

    def __init__(self, client: httpx.AsyncClient, webhook_url: str) -> None:
        self.client, self.url = client, webhook_url

    async def send(self, alert: AlertEvent) -> None:
        payload = {"text": slack_escape(render_text(alert))}
        check_answer(self.name, await post(self.name, self.client, self.url, json=payload))
