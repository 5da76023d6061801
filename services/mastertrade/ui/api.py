"""HTTP routes of monitoring_ui: the dashboard page and the status it shows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mastertrade.core.upstream import fetch_all_health
from mastertrade.ui.settings import UiSettings

router = APIRouter(tags=["monitoring"])

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MasterTrade</title>
<style>body{font-family:sans-serif;margin:2rem}td,th{padding:.3rem 1rem;text-align:left}</style>
</head><body><h1>MasterTrade</h1><table id="status"><tr><th>upstream</th><th>status</th></tr>
</table><script>
fetch('/api/status').then(r => r.json()).then(data => {
  const table = document.getElementById('status');
  for (const [name, info] of Object.entries(data)) {
    const row = table.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = info.status;
  }
});
</script></body></html>
"""


@router.get("/", response_class=HTMLResponse)
async def dashboard() -> str:
    """The dashboard page."""
    return PAGE


@router.get("/api/status")
async def status(request: Request) -> dict[str, dict[str, Any]]:
    """Health of the services the UI reads through (the API gateway, the data access API)."""
    settings: UiSettings = request.app.state.settings
    return await fetch_all_health(settings.upstreams, timeout=settings.dependency_timeout)
