"""FastAPI dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mastertrade.core.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The Runtime of the app answering the request (async: no worker-thread hop per request)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
