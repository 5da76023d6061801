"""Who may start a generation on demand: a bearer token whose SHA-256 is
STRATEGY_ADMIN_API_KEY_SHA256 (see `mastertrade.core.admin_token`). The route sits under
`/api/v1/admin/`, so through the API gateway it needs a key with scope admin as well."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mastertrade.core.admin_token import require_token

AdminDep = Annotated[str, Depends(require_token("STRATEGY_ADMIN_API_KEY_SHA256"))]
