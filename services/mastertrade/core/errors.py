"""Error answers that say what is wrong without echoing the caller's input back at length.

FastAPI's default 422 repeats each invalid input whole (a 1 MB string comes back as 1 MB, and
its `ctx` may hold exception objects); this handler keeps the same shape (`detail`: a list of
`loc`, `msg`, `type`) with the input cut to a short preview.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.responses import Response

PREVIEW_CHARS = 64
MAX_ERRORS = 20


def preview(value: Any, limit: int = PREVIEW_CHARS) -> Any:
    """Short values as they are; long strings, and containers, as a cut `repr`. A NaN or an
    Infinity (Python's JSON parser reads the bare literals) as its text, since JSON has none."""
    if (
        value is None
        or isinstance(value, bool | int)
        or (isinstance(value, float) and math.isfinite(value))
    ):
        return value
    text = _encodable(value if isinstance(value, str) else repr(value))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _encodable(text: str) -> str:
    """`text`, its lone surrogates (JSON's escapes allow "\\ud800") written out as escapes:
    the answer is UTF-8, and one that cannot be encoded would be a 500 in place of the 422."""
    return text.encode("utf-8", "backslashreplace").decode()


def describe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Each error as loc, msg, type and a preview of the input, at most MAX_ERRORS of them."""
    described = []
    for error in list(errors)[:MAX_ERRORS]:
        item: dict[str, Any] = {
            "loc": [_encodable(str(part)) for part in error.get("loc", ())],
            "msg": preview(str(error.get("msg", "invalid")), 300),
            "type": str(error.get("type", "value_error")),
        }
        if "input" in error and error["type"] != "missing":
            item["input"] = preview(error["input"])
        described.append(item)
    return described


def invalid_parameter(where: str, name: str, message: str) -> RequestValidationError:
    """A 422 naming one parameter (`where` is query, path, header or body) and why it is wrong."""
    return RequestValidationError([{"loc": (where, name), "msg": message, "type": "value_error"}])


async def validation_error(request: Request, error: Exception) -> Response:
    """422 with a short description of every invalid parameter."""
    del request
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse({"detail": describe_errors(errors)}, status_code=422)
