"""The gateway's handling of one proxied request: service, key, scope, rate, body, forward.

`client` (httpx) asks the services for their health; `pool` (aiohttp, see `proxy`) carries the
proxied requests. Both are opened in the lifespan.
"""

from __future__ import annotations

import httpx
from fastapi import Request
from fastapi.responses import Response

from mastertrade.core.runtime import Runtime
from mastertrade.gateway.access import (
    AccessDeniedError,
    authorize,
    required_scope,
    unforwardable,
)
from mastertrade.gateway.health import SharedHealth
from mastertrade.gateway.keys import ApiKey, KeyStore, Scope
from mastertrade.gateway.proxy import BodyTooLargeError, Upstreams, forward, problem, read_body
from mastertrade.gateway.ratelimit import Decision, RateLimiter
from mastertrade.gateway.settings import GatewaySettings, routable_services


class Gateway:
    """Routing state of one gateway instance; the pooled client is set in the lifespan."""

    def __init__(self, settings: GatewaySettings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.keys = KeyStore(settings.api_keys())
        self.upstreams = {name: url.rstrip("/") for name, url in settings.upstreams.items()}
        self.services = {spec.kube_name: spec for spec in routable_services()}
        self.client: httpx.AsyncClient | None = None
        self.health = SharedHealth()  # the health listings' checks, shared by their callers
        self.pool: Upstreams | None = None
        self._limiter: RateLimiter | None = None

    def new_client(self) -> httpx.AsyncClient:
        settings = self.settings
        return httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.gateway_upstream_timeout,
                connect=settings.dependency_timeout,
                pool=settings.dependency_timeout,
            ),
            limits=httpx.Limits(
                max_connections=settings.gateway_max_connections,
                max_keepalive_connections=settings.gateway_max_connections,
            ),
            follow_redirects=False,
        )

    def open_pool(self) -> Upstreams:
        settings = self.settings
        return Upstreams.open(settings.gateway_max_connections, settings.dependency_timeout,
                              settings.gateway_upstream_timeout)  # fmt: skip

    def _rate_limiter(self) -> RateLimiter:
        """One limiter (its script registered once) while the Redis client stays the same."""
        redis = self.runtime.redis
        if self._limiter is None or self._limiter.client is not redis:
            self._limiter = RateLimiter(redis, self.settings.gateway_rate_window)
        return self._limiter

    async def _rate(self, request: Request, key: ApiKey | None) -> Decision:
        limiter = self._rate_limiter()
        if key is not None:
            return await limiter.hit(f"key:{key.name}", self.settings.gateway_rate_limit)
        address = request.client.host if request.client else "unknown"
        return await limiter.hit(f"ip:{address}", self.settings.gateway_anonymous_rate_limit)

    async def _admit(self, request: Request, service: str) -> ApiKey | Response | None:
        """The caller's key (None: anonymous), or the answer refusing the request: a path the
        service would read otherwise than the gateway did, or a key missing or short of scope."""
        path = request.path_params.get("path", "")
        if reason := unforwardable(path):
            return problem(400, reason)
        required = required_scope(
            request.method, self.settings.gateway_require_key_for_reads, path, service
        )
        return await self.admit_counted(request, required)

    def admit(self, request: Request, required: Scope | None) -> ApiKey | Response | None:
        """The caller's key (None: anonymous), or the answer refusing a request that needs
        `required` (None: no key needed): 401 without a known key, 403 short of scope."""
        try:
            return authorize(self.keys, request.headers, required)
        except AccessDeniedError as denied:
            answer = problem(denied.status, denied.detail)
            if denied.status == 401:
                answer.headers["WWW-Authenticate"] = "Bearer"
            return answer

    async def admit_counted(
        self, request: Request, required: Scope | None
    ) -> ApiKey | Response | None:
        """`admit`, with every 401 counted against the caller's address as an anonymous request
        is: guesses at a key are held to GATEWAY_ANONYMOUS_RATE_LIMIT, then answered 429."""
        answer = self.admit(request, required)
        if not isinstance(answer, Response) or answer.status_code != 401:
            return answer
        decision = await self._rate(request, None)
        if decision.allowed:
            return answer
        refused = problem(429, "too many requests without a known key; retry later",
                          decision.retry_after)  # fmt: skip
        return _with_rate(refused, decision)

    async def handle(self, request: Request, service: str) -> Response:
        """Answer `/api/<service>/<path>`."""
        spec = self.services.get(service.lower().replace("_", "-"))
        if spec is None:
            known = ", ".join(sorted(self.services))
            return problem(404, f"no service named {service[:64]!r}; routable: {known}")
        key = await self._admit(request, spec.kube_name)
        if isinstance(key, Response):
            return key
        decision = await self._rate(request, key)
        if not decision.allowed:
            answer = problem(429, "rate limit reached; retry later", decision.retry_after)
            return _with_rate(answer, decision)
        base_url = self.upstreams.get(spec.name)
        if base_url is None or self.pool is None:
            variable = f"{spec.name.upper()}_URL"
            return problem(
                503, f"{spec.kube_name} is not configured on the gateway: set {variable}"
            )
        try:
            body = await read_body(request, self.settings.gateway_max_body_bytes)
        except BodyTooLargeError:
            limit = self.settings.gateway_max_body_bytes
            return problem(413, f"the request body is larger than {limit} bytes")
        return _with_rate(
            await forward(self.pool, spec.kube_name, base_url, request, body), decision
        )


def _with_rate(answer: Response, decision: Decision) -> Response:
    answer.headers["X-RateLimit-Limit"] = str(decision.limit)
    answer.headers["X-RateLimit-Remaining"] = str(decision.remaining)
    return answer
