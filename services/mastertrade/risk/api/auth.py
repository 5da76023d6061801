"""Admin authentication of the risk manager: a bearer token whose SHA-256 is
RISK_ADMIN_API_KEY_SHA256 (see `mastertrade.core.admin_token`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mastertrade.core.admin_token import require_token

AdminDep = Annotated[str, Depends(require_token("RISK_ADMIN_API_KEY_SHA256"))]
