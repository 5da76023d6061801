"""SMS through Twilio's REST API: POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded
To/From/Body, HTTP basic auth (account SID, auth token); 201 with the message's JSON. A Body
over 1600 characters is refused (21617), a character beyond U+FFFF counting two, as in UTF-16:
a longer text is cut to fit (`clip`)."""

from __future__ import annotations

import httpx

from mastertrade.alerts.adapters.channels.base import check_answer, post
from mastertrade.alerts.domain.events import clip, render_text
from mastertrade.core.messages import AlertEvent


class TwilioChannel:
    name = "sms"
    limit = 1600

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_url: str,
        account: tuple[str, str],
        numbers: tuple[str, str],
    ) -> None:
        sid, self.token = account
        self.client, self.sid = client, sid
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        self.sender, self.to = numbers

    async def send(self, alert: AlertEvent) -> None:
        form = {
            "To": self.to,
            "From": self.sender,
            "Body": clip(render_text(alert), self.limit, True),
        }
        response = await post(
            self.name, self.client, self.url, data=form, auth=(self.sid, self.token)
        )
        check_answer(self.name, response)
