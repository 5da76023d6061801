"""The HTTP side shared by the collectors: one pooled httpx client per provider, answers sorted.

200 gives the JSON (numbers exact, NaN refused); 401/403 is `UnauthorizedError` (a wrong or
revoked key: the collector says so in /health and waits long before trying again); 429 is
`RateLimitedError` with the wait the provider asked for; 5xx and network failures are
`ProviderUnavailableError`; any other answer is `ProviderRefusedError`. Error texts quote at
most 200 characters of the answer and never the credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from mastertrade import __version__
from mastertrade.market_data.domain.observations import parse_json
from mastertrade.market_data.domain.polling import retry_after_seconds

# Reddit refuses generic agents; every provider is told who is asking
USER_AGENT = f"python:mastertrade-market-data:{__version__} (by /u/mastertrade)"


class ProviderError(Exception):
    """A provider did not give data this time; the message says which and why."""


class UnauthorizedError(ProviderError):
    """The key or token was refused (401/403)."""


class RateLimitedError(ProviderError):
    """429: come back after `wait` seconds."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class ProviderUnavailableError(ProviderError):
    """5xx, a timeout or a refused connection: worth retrying after a pause."""


class ProviderRefusedError(ProviderError):
    """Another 4xx: the request itself is wrong (a bad asset or metric name, say)."""


class ProviderHttp:
    """Requests to one provider's base URL, answers turned into JSON or a ProviderError."""

    def __init__(
        self, name: str, base_url: str, timeout: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.clock = clock
        self.requests = 0
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """The JSON answer of `method path`, or a ProviderError."""
        self.requests += 1
        try:
            response = await self._client.request(
                method, path, params=params, headers=headers, data=data, auth=auth
            )
        except httpx.TransportError as error:
            raise ProviderUnavailableError(
                f"{self.name} {path}: {type(error).__name__} {str(error)[:200]}"
            ) from None
        return self._answer(path, response)

    def _answer(self, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        said = response.text[:200].replace("\n", " ")
        if status == 200:
            return parse_json(response.content)
        if status in (401, 403):
            raise UnauthorizedError(f"{self.name} refused the credentials ({status}): {said}")
        if status == 429:
            wait = retry_after_seconds(response.headers, self.clock())
            raise RateLimitedError(
                f"{self.name} rate limit reached (429), waiting {wait:.0f}s", wait
            )
        if status >= 500:
            raise ProviderUnavailableError(f"{self.name} {path} answered {status}: {said}")
        raise ProviderRefusedError(f"{self.name} {path} answered {status}: {said}")
