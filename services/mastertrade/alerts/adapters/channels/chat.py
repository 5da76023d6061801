"""Telegram (Bot API sendMessage), Discord and Slack incoming webhooks."""

from __future__ import annotations

from typing import Any

import httpx

from mastertrade.alerts.adapters.channels.base import (
    ChannelError,
    check_answer,
    post,
    read_seconds,
)
from mastertrade.alerts.domain.events import render_text
from mastertrade.core.messages import AlertEvent


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class TelegramChannel:
    """POST {api}/bot<token>/sendMessage {chat_id, text}; errors are {ok: false, error_code,
    description, parameters: {retry_after}}."""

    name = "telegram"

    def __init__(self, client: httpx.AsyncClient, api_url: str, token: str, chat_id: str) -> None:
        self.client, self.url, self.chat_id = client, f"{api_url.rstrip('/')}/bot{token}", chat_id

    async def send(self, alert: AlertEvent) -> None:
        payload = {"chat_id": self.chat_id, "text": render_text(alert)[:4096]}
        response = await post(self.name, self.client, f"{self.url}/sendMessage", json=payload)
        body = _json(response)
        parameters = body.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        check_answer(self.name, response, read_seconds(retry_after))
        if body.get("ok") is not True:
            raise ChannelError(f"telegram: {body.get('description', 'not ok')}", False)


class DiscordChannel:
    """POST <webhook> {content}; 204 on success, 429 {retry_after (seconds)}."""

    name = "discord"

    def __init__(self, client: httpx.AsyncClient, webhook_url: str) -> None:
        self.client, self.url = client, webhook_url

    async def send(self, alert: AlertEvent) -> None:
        payload = {"content": render_text(alert)[:2000]}
        response = await post(self.name, self.client, self.url, json=payload)
        retry_after = _json(response).get("retry_after") if response.status_code == 429 else None
        check_answer(self.name, response, read_seconds(retry_after))


class SlackChannel:
    """POST <webhook> {text}; 200 "ok", 4xx with a reason such as invalid_payload, 429."""

    name = "slack"

    def __init__(self, client: httpx.AsyncClient, webhook_url: str) -> None:
        self.client, self.url = client, webhook_url

    async def send(self, alert: AlertEvent) -> None:
        payload = {"text": render_text(alert)}
        check_answer(self.name, await post(self.name, self.client, self.url, json=payload))
