"""Signed webhooks: POST the alert's JSON with `X-MasterTrade-Signature: sha256=<hex>`, the
HMAC-SHA256 of `<timestamp>.<body>` under ALERT_WEBHOOK_SECRET, and `X-MasterTrade-Timestamp`
(Unix seconds), so a receiver can check origin and refuse replays (Stripe's scheme)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from mastertrade.alerts.adapters.channels.base import check_answer, post
from mastertrade.core.messages import AlertEvent


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookChannel:
    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self.client, self.url, self.secret = client, url, secret

    async def send(self, alert: AlertEvent) -> None:
        body = json.dumps(alert.to_json(), separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-MasterTrade-Timestamp": stamp,
            "X-MasterTrade-Signature": sign_webhook(self.secret, stamp, body),
        }
        check_answer(
            self.name, await post(self.name, self.client, self.url, content=body, headers=headers)
        )
