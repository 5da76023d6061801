"""Signed webhooks: POST the alert's JSON with `X-MasterTrade-Signature: sha256=<hex>`, the
HMAC-SHA256 of `<timestamp>.<body>` under ALERT_WEBHOOK_SECRET, and `X-MasterTrade-Timestamp`
(Unix seconds), so a receiver can check origin and refuse replays (Stripe's scheme).

Every attempt of one alert carries the same delivery id, `delivery_id` in the (signed) body and
the `X-MasterTrade-Delivery` header, so a receiver recognises a resend (a replica that died
between sending and recording the outcome, a retry after a timeout whose request did arrive) as
the alert it already has. A channel is handed the alert, not its id in the history, so the
delivery id is a digest of the fields that identify the alert (`delivery_id`), all stored with
it: a delivery resumed by another replica computes the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC

import httpx

from mastertrade.alerts.adapters.channels.base import check_answer, post
from mastertrade.core.messages import AlertEvent


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def delivery_id(alert: AlertEvent) -> str:
    """The alert's id on the webhook: the SHA-256 (32 hex digits kept) of its kind, dedup key,
    title, source and the instant it happened. Each is stored with the alert and read back as it
    was when a delivery is resumed; the instant is taken in UTC, as PostgreSQL gives it back
    (an event sent at +02:00 is resumed at +00:00, the same instant)."""
    when = alert.occurred_at.astimezone(UTC).isoformat()
    fields = [alert.kind, alert.dedup_key, alert.title, alert.source, when]
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class WebhookChannel:
    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self.client, self.url, self.secret = client, url, secret

    async def send(self, alert: AlertEvent) -> None:
        delivery = delivery_id(alert)
        # in the body too, so the id is signed: a header alone could be changed on the way
        content = {**alert.to_json(), "delivery_id": delivery}
        body = json.dumps(content, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-MasterTrade-Delivery": delivery,
            "X-MasterTrade-Timestamp": stamp,
            "X-MasterTrade-Signature": sign_webhook(self.secret, stamp, body),
        }
        check_answer(
            self.name, await post(self.name, self.client, self.url, content=body, headers=headers)
        )
