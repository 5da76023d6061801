"""SQL of a page or an export of a resource: equality filters, a time range, a keyset, an order.

Values always travel as parameters; identifiers come only from `resources` (never from the
request). The keyset condition is a row comparison, `(t, id) > ($n, $m)`, which PostgreSQL
answers from a btree index on (t, id) as a range scan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from mastertrade.data_api.resources import Resource

Order = Literal["asc", "desc"]


class Row(Protocol):
    """A database row (asyncpg.Record or a dict): values by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class Selection:
    """Which rows of a resource, in which order, from where."""

    filters: Mapping[str, Any] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    order: Order = "asc"
    after: Sequence[Any] | None = None

    def identity(self) -> dict[str, Any]:
        """What defines the sequence of rows (a cursor is valid only for the same identity)."""
        return {**self.filters, "start": self.start, "end": self.end, "order": self.order}


def build_query(
    resource: Resource, selection: Selection, limit: int | None
) -> tuple[str, list[Any]]:
    """SQL and parameters of the rows `selection` describes, at most `limit` of them."""
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = [f"{name} = {param(value)}" for name, value in selection.filters.items()]
    if selection.start is not None:
        where.append(f"{resource.time_column} >= {param(selection.start)}")
    if selection.end is not None:
        where.append(f"{resource.time_column} < {param(selection.end)}")
    if selection.after is not None:
        keys = ", ".join(resource.key)
        values = ", ".join(param(value) for value in selection.after)
        where.append(f"({keys}) {'>' if selection.order == 'asc' else '<'} ({values})")
    direction = "ASC" if selection.order == "asc" else "DESC"
    sql = (
        f"SELECT {', '.join(column.select() for column in resource.columns)} "
        f"FROM {resource.table} WHERE {' AND '.join(where) or 'TRUE'} "
        f"ORDER BY {', '.join(f'{key} {direction}' for key in resource.key)}"
    )
    if limit is not None:
        sql += f" LIMIT {param(limit)}"
    return sql, args


def row_to_json(resource: Resource, row: Row) -> dict[str, Any]:
    """A row as served in JSON: decimals as strings, times in ISO 8601, JSON columns parsed."""
    out: dict[str, Any] = {}
    for column in resource.columns:
        value = row[column.name]
        if value is not None and column.kind == "time":
            value = value.isoformat()
        elif value is not None and column.kind == "json":
            value = json.loads(value)
        out[column.name] = value
    return out


# A spreadsheet opening the CSV runs a field starting with one of these as a formula; alert
# texts come from outside (Alertmanager's annotations, exchanges' error messages).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(text: str) -> str:
    """Text a spreadsheet shows as written: a leading quote before what would start a formula
    (OWASP's advice for CSV injection)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def row_to_csv(resource: Resource, row: Row) -> list[str]:
    """A row as CSV fields: times in ISO 8601, NULL as an empty field, text that a spreadsheet
    would take for a formula quoted (numbers, negative ones included, as they are)."""
    fields = []
    for column in resource.columns:
        value = row[column.name]
        if value is None:
            fields.append("")
        elif column.kind == "time":
            fields.append(value.isoformat())
        elif column.kind in ("text", "json"):
            fields.append(_inert(str(value)))
        else:
            fields.append(str(value))
    return fields


def key_of(resource: Resource, row: Row) -> list[Any]:
    """The keyset values of a row (what the next page starts after)."""
    return [row[name] for name in resource.key]
