"""Health asked of an upstream: a connection dropped without an answer is tried once more (a
stopping Pod's pooled connection), a second failure or a timeout is `unreachable`."""

from __future__ import annotations

import httpx

from mastertrade.core.upstream import fetch_health

URL = "http://risk-manager:8080"


def client_failing(failures: list[Exception]) -> tuple[httpx.AsyncClient, list[str]]:
    """A client whose first requests raise `failures` in turn, then answer healthy."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if len(seen) <= len(failures):
            raise failures[len(seen) - 1]
        return httpx.Response(200, json={"status": "healthy"})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer)), seen


async def test_a_connection_dropped_without_an_answer_is_tried_once_more() -> None:
    client, seen = client_failing([httpx.RemoteProtocolError("Server disconnected")])
    async with client:
        assert await fetch_health(client, URL) == {"status": "healthy", "url": URL, "code": 200}
    assert seen == [f"{URL}/health", f"{URL}/health"]


async def test_a_refused_connection_twice_is_unreachable() -> None:
    client, seen = client_failing([httpx.ConnectError("refused"), httpx.ConnectError("again")])
    async with client:
        found = await fetch_health(client, URL)
    assert found == {"status": "unreachable", "url": URL, "error": "ConnectError"}
    assert len(seen) == 2


async def test_a_timeout_is_not_retried() -> None:
    client, seen = client_failing([httpx.ReadTimeout("slow")])
    async with client:
        found = await fetch_health(client, URL)
    assert found == {"status": "unreachable", "url": URL, "error": "ReadTimeout"}
    assert len(seen) == 1
