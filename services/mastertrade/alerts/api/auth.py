"""Admin authentication of the alert system: the risk manager's admin token, a bearer token
whose SHA-256 is RISK_ADMIN_API_KEY_SHA256 (one setting, so an operator holds one token for
both; see `mastertrade.core.admin_token`, which compares in constant time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mastertrade.core.admin_token import require_token

AdminDep = Annotated[str, Depends(require_token("RISK_ADMIN_API_KEY_SHA256"))]
