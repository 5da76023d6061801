"""Turning what arrives into alerts: trading events, AlertEvents, Alertmanager notifications.

The alert system's queue carries AlertEvents (`mastertrade.alerts`) and order events
(`order.filled`, `order.rejected`, `order.cancelled`); the consumer sees only the body, so the
shape tells which.
Alertmanager posts its webhook JSON (version 4): one alert per entry, firing or resolved, its
fingerprint and status making the dedup key so a re-sent notification is not a new alert.
Prometheus itself posts to Alertmanager's API v2 (`POST /api/v2/alerts`: a list of alerts with
labels, annotations, startsAt and endsAt, resolved once endsAt has passed) and re-sends every
firing alert each minute: the same alert and start give the same dedup key, so it is sent once.
An order event's key and a keyless message's key name one event: redelivered however late, it
is not a new alert (domain/dedup.py). An order event's alert keeps the event's `occurred_at`;
a time without a zone is refused (core/messages.py), and the message dead-lettered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mastertrade.alerts.domain.dedup import PAYLOAD_PREFIX, order_key
from mastertrade.alerts.domain.report import show
from mastertrade.core.amounts import brief
from mastertrade.core.messages import AlertEvent, OrderEvent, StorableText

LabelText = StorableText
"""A label's or an annotation's name or value: refused whole with its post when PostgreSQL could
not store it, before any alert of the post is sent (a later one failing half-applied it)."""
Labels = dict[LabelText, LabelText]

SEVERITIES = {"critical": "critical", "error": "critical", "warning": "warning", "page": "critical"}


def build_from_order(order: OrderEvent) -> AlertEvent:
    """The alert of an order event, dated when the order's status changed (`occurred_at`), not
    when the alert system took the event off its queue, maybe after a backlog. A fill's fee is
    written in plain digits (never "7.5E-7") and without an asset: the event carries none, and
    the exchange may charge it in another asset than the quote (Binance's BNB discount)."""
    if order.status == "filled" or order.filled_quantity:
        return _fill_alert(order)
    title = f"Order {order.status}: {order.side} {brief(order.quantity)} {order.symbol}"
    return AlertEvent(
        kind=f"order_{order.status}",
        severity="warning",
        title=title[:200],
        message=f"order {order.client_order_id}: {order.reason or 'no reason given'}"[:4000],
        dedup_key=order_key(order.status, order.client_order_id),
        source="order_executor",
        occurred_at=order.occurred_at,
    )


def _fill_alert(order: OrderEvent) -> AlertEvent:
    """A fill's alert; an order cancelled after a part of it filled (a live market buy that
    expired at its price ceiling, a resting order cancelled by a halt) is a fill of that part,
    its title saying of how much, its message why the rest went."""
    price = "?" if order.average_price is None else brief(order.average_price)
    partly = order.status != "filled"
    amount = brief(order.filled_quantity) + (f" of {brief(order.quantity)}" if partly else "")
    title = (f"{'Partly filled' if partly else 'Filled'}: {order.side} {amount} {order.symbol} "
             f"at {price} ({order.environment})")  # fmt: skip
    message = f"order {order.client_order_id}, fee {show(order.fee)}"
    if partly:
        message += f"; the rest {order.status}: {order.reason or 'no reason given'}"
    return AlertEvent(
        kind="order_filled",
        severity="info",
        title=title[:200],
        message=message[:4000],
        dedup_key=order_key(order.status, order.client_order_id),
        source="order_executor",
        occurred_at=order.occurred_at,
    )


def build_from_message(payload: Mapping[str, Any]) -> AlertEvent:
    """An AlertEvent or an order event, validated (ValueError when it is neither).

    An AlertEvent without a dedup key gets one made of its whole payload, so the same message
    delivered again (the broker redelivers what was not acknowledged, an outbox publishes again
    what it could not mark) is one alert; two events differ at least in `occurred_at`."""
    if "kind" in payload:
        alert = AlertEvent.model_validate(payload)
        if alert.dedup_key is None:
            alert = alert.model_copy(update={"dedup_key": payload_key(payload)})
        return alert
    if "client_order_id" in payload and "status" in payload:
        return build_from_order(OrderEvent.model_validate(payload))
    raise ValueError("neither an AlertEvent (with 'kind') nor an order event (with 'status')")


def message_digest(payload: Mapping[str, Any]) -> str | None:
    """The identity of a queued message, to know it again when the broker redelivers it,
    however late: the digest of its canonical JSON, for one that says when its event happened
    (every producer's does: without a time, the same content may be a new event)."""
    return payload_key(payload) if "occurred_at" in payload else None


def payload_key(payload: Mapping[str, Any]) -> str:
    """A dedup key for a message that names none: a digest of its canonical JSON."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return PAYLOAD_PREFIX + hashlib.sha256(text.encode()).hexdigest()


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: Labels = {}
    annotations: Labels = {}
    startsAt: LabelText = ""  # noqa: N815 - Alertmanager's field name
    fingerprint: LabelText = ""


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body (version 4)."""

    model_config = ConfigDict(extra="ignore")

    version: str = "4"
    status: str
    receiver: str = ""
    alerts: list[AlertmanagerAlert] = Field(max_length=256)  # as Prometheus' batches, at most


class PostableAlert(BaseModel):
    """One alert of Alertmanager's API v2 `POST /api/v2/alerts` (what Prometheus sends)."""

    model_config = ConfigDict(extra="ignore")

    labels: Labels
    annotations: Labels = {}
    # with a time zone, as Alertmanager's API requires (RFC 3339): a naive one is refused (422)
    startsAt: AwareDatetime | None = None  # noqa: N815 - Alertmanager's field name
    endsAt: AwareDatetime | None = None  # noqa: N815 - Alertmanager's field name
    generatorURL: LabelText = ""  # noqa: N815 - Alertmanager's field name


def build_from_postable(alerts: list[PostableAlert], now: datetime) -> list[AlertEvent]:
    """Alerts posted to the API v2; one whose endsAt has passed is resolved."""
    entries = [
        AlertmanagerAlert(
            status="resolved" if alert.endsAt is not None and alert.endsAt <= now else "firing",
            labels=alert.labels,
            annotations=alert.annotations,
            startsAt=alert.startsAt.isoformat() if alert.startsAt else "",
        )
        for alert in alerts
    ]
    return build_from_alertmanager(AlertmanagerWebhook(status="firing", alerts=entries))


def labels_digest(labels: Mapping[str, str]) -> str:
    """An alert's identity from all its labels, as Alertmanager's fingerprint is: a digest of
    fixed length, so the dedup key's status and start are never cut off however many labels
    there are (a firing and a resolved alert cut to one key would suppress the resolution)."""
    text = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def build_from_alertmanager(webhook: AlertmanagerWebhook) -> list[AlertEvent]:
    found = []
    for alert in webhook.alerts:
        name = alert.labels.get("alertname", "prometheus alert")
        resolved = alert.status == "resolved"
        severity = (
            "info" if resolved else SEVERITIES.get(alert.labels.get("severity", ""), "warning")
        )
        summary = alert.annotations.get("summary") or alert.annotations.get("description", "")
        key = alert.fingerprint or labels_digest(alert.labels)
        found.append(
            AlertEvent(
                kind="prometheus",
                severity=severity,
                source="alertmanager",
                title=f"[{alert.status.upper()}] {name}"[:200],
                message=summary[:4000],
                dedup_key=f"am:{key[:64]}:{alert.status}:{alert.startsAt[:40]}",
            )
        )
    return found


def render_text(alert: AlertEvent) -> str:
    """The one-message text every chat channel sends."""
    head = f"[{alert.severity.upper()}] {alert.title}"
    return f"{head}\n{alert.message}" if alert.message else head


CUT = "\u2026"
"""What ends a text `clip` shortened ("…", one code unit), so its reader knows there was more."""


def utf16_length(text: str) -> int:
    """`text`'s length in UTF-16 code units, as Telegram and Twilio count it: a character
    beyond U+FFFF (most emoji) is two."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clip(text: str, limit: int, utf16: bool = False) -> str:
    """`text` within `limit` characters, counted as code points or, with `utf16`, as UTF-16
    code units; ending with CUT when shortened, and never in the middle of a character."""
    if (utf16_length(text) if utf16 else len(text)) <= limit:
        return text
    if not utf16:
        return text[: limit - len(CUT)] + CUT
    units = text.encode("utf-16-le", "surrogatepass")[: 2 * (limit - len(CUT))]
    kept = units.decode("utf-16-le", "surrogatepass")
    if kept and "\ud800" <= kept[-1] <= "\udbff":  # the first half of a pair cut in two
        kept = kept[:-1]
    return kept + CUT
