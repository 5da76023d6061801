"""Applying the versioned SQL files in `sql/` in order, once each, under an advisory lock.

Files are named `NNNN_description.sql`. Each is applied in its own transaction together with its
row in `schema_migrations` (version, name, sha256 checksum, time), so a failure leaves nothing
half-applied. A PostgreSQL advisory lock makes concurrent runners (a Helm hook Job and the
operator, two replicas) take turns; the second finds nothing left to do. A file changed after it
was applied is refused rather than silently skipped. While PostgreSQL is not up yet, the runner
waits and retries with a progress line per attempt, up to a timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import asyncpg

from mastertrade.core.settings import redact

Report = Callable[[str], None]

LOCK_KEY = 0x6D61737465727472  # "mastertr": one lock id for every MasterTrade migrator
FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    checksum   TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migrations cannot be applied; the message says which and why."""


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def build_migrations(files: dict[str, str]) -> list[Migration]:
    """Migrations from file name -> SQL, in version order; rejects bad names and duplicates."""
    found: dict[int, Migration] = {}
    for filename, sql in files.items():
        match = FILE_PATTERN.match(filename)
        if match is None:
            raise MigrationError(f"{filename}: migration files are named NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{filename}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), sql)
    return [found[version] for version in sorted(found)]


def load_migrations() -> list[Migration]:
    """The migrations shipped in this package."""
    folder = resources.files("mastertrade.migrations") / "sql"
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }
    return build_migrations(files)


async def connect_with_retry(url: str, timeout: float, report: Report) -> asyncpg.Connection:
    """Connect, retrying every second or two until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncpg.connect(url, timeout=min(5.0, max(timeout, 0.1)))
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MigrationError(
                    f"PostgreSQL at {redact(url)} not reachable after {timeout:.0f}s "
                    f"({attempt} attempts): {error}"
                ) from error
            report(
                f"waiting for PostgreSQL at {redact(url)} (attempt {attempt}, "
                f"{left:.0f}s left): {type(error).__name__}: {error}"
            )
            await asyncio.sleep(min(2.0, left))


async def _applied(connection: asyncpg.Connection) -> dict[int, str]:
    rows = await connection.fetch("SELECT version, checksum FROM schema_migrations")
    return {int(row["version"]): str(row["checksum"]) for row in rows}


def pending_migrations(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """Those not applied yet; raises when an applied one's file has changed since."""
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied; add a new migration instead of editing an applied one"
            )
    return [migration for migration in migrations if migration.version not in applied]


async def apply_migrations(
    connection: asyncpg.Connection, migrations: list[Migration], report: Report
) -> list[Migration]:
    """Apply what is pending under the advisory lock; returns what was applied."""
    await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await connection.execute(CREATE_TABLE)
        todo = pending_migrations(migrations, await _applied(connection))
        for migration in todo:
            report(f"applying {migration.version:04d}_{migration.name}")
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return todo
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def migrate_database(url: str, timeout: float, report: Report) -> list[Migration]:
    """Wait for PostgreSQL, then bring its schema up to date."""
    migrations = load_migrations()
    connection = await connect_with_retry(url, timeout, report)
    try:
        applied = await apply_migrations(connection, migrations, report)
    finally:
        await connection.close()
    latest = migrations[-1].version if migrations else 0
    if applied:
        report(f"database at version {latest:04d} ({len(applied)} migration(s) applied)")
    else:
        report(f"database already at version {latest:04d}, nothing to apply")
    return applied
