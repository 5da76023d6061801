"""Backup and restore round trip on real PostgreSQL, with the scripts the CronJob runs.

`charts/mastertrade/files/backup/backup.sh` and `restore.sh` are run as they are (`sh <script>`),
with the libpq environment the CronJob gets pointing at a scratch database on the machine's
PostgreSQL, and BACKUP_DIR at a temporary directory instead of the /backups volume. The machine's
RabbitMQ has no management plugin (and none is enabled on it), so the round trip checks that the
export says it was skipped; the export itself is checked against a private broker started with
the plugin on ports of its own.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helm import CHART
from tests.infra import PrivateRabbit, create_database, drop_database

pytestmark = pytest.mark.infra

SCRIPTS = CHART / "files" / "backup"
PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
SHARED_MANAGEMENT = "http://127.0.0.1:15672"
DAY = 86400

SCHEMA = """
CREATE TABLE strategies (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    parameters jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE trades (
    id bigserial PRIMARY KEY,
    strategy_id integer REFERENCES strategies (id),
    symbol text NOT NULL,
    price numeric(20, 8) NOT NULL,
    quantity numeric NOT NULL,
    executed_at timestamptz NOT NULL,
    details jsonb,
    raw_fill bytea
);
CREATE INDEX trades_symbol ON trades (symbol);
INSERT INTO strategies (name, parameters, created_at) VALUES
    ('momentum', '{"window": 20, "threshold": 0.015, "pairs": ["BTCUSDT", "ETHUSDT"]}',
     '2026-01-01 02:00:00.123456+00'),
    ('mean-reversion', '{"z": -2.5, "nested": {"ok": true, "none": null}}',
     '2026-03-29 01:30:00+01');
INSERT INTO trades (strategy_id, symbol, price, quantity, executed_at, details, raw_fill) VALUES
    (1, 'BTCUSDT', 43250.12345678, 0.00100000, '2026-01-02 03:04:05.678901+00',
     '{"side": "BUY", "fees": [0.1, 0.0001]}', '\\x00ff10deadbeef'),
    (1, 'ETHUSDT', 0.00000001, 12345678901234567890.123456789, '2026-06-30 23:59:59.999999-07',
     '{"side": "SELL", "note": "ünïcødé ✓"}', ''),
    (2, 'SOLUSDT', 99999999999.99999999, 1, '1999-12-31 23:59:59+00', NULL, NULL);
"""

TABLES = ("strategies", "trades")


@dataclass(frozen=True)
class Database:
    name: str

    @property
    def env(self) -> dict[str, str]:
        """The CronJob's libpq variables, for this database (trust auth: no PGPASSWORD)."""
        return {**PG, "PGDATABASE": self.name}

    def psql(self, sql: str) -> str:
        done = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env={**clean_environ(), **self.env},
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout

    def snapshot(self) -> dict[str, list[str]]:
        """Every table's rows, in key order, as PostgreSQL writes them (exact numeric scale,
        timestamps to the microsecond in UTC, jsonb, bytea in hex), plus the sequences."""
        tables = self.psql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).split()
        state = {
            table: self.psql(
                f"SET TIME ZONE 'UTC'; SELECT t::text FROM {table} t ORDER BY t.id"
            ).splitlines()
            for table in tables
        }
        state["sequences"] = self.psql(
            "SELECT sequencename || '=' || coalesce(last_value, 0) FROM pg_sequences ORDER BY 1"
        ).splitlines()
        return state


def clean_environ() -> dict[str, str]:
    """The test's environment without any PG* or backup variable that would leak in."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "RABBITMQ_", "BACKUP_", "RETENTION_", "RESTORE_"))
    }


def run_script(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPTS / script), *args],
        env={**clean_environ(), **env},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


@pytest.fixture
def database() -> Iterator[Database]:
    """A scratch database with a few tables and rows, dropped afterwards."""
    url = create_database("mastertrade_backup")
    try:
        db = Database(url.rsplit("/", 1)[1])
        db.psql(SCHEMA)
        yield db
    finally:
        drop_database(url)


def shared_management_answers() -> bool:
    """Whether the machine's broker serves the management API (it is never enabled here)."""
    try:
        with urllib.request.urlopen(f"{SHARED_MANAGEMENT}/api/overview", timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if only with 401
    except OSError:
        return False


def rabbitmq_env() -> dict[str, str]:
    if shared_management_answers():
        return {
            "RABBITMQ_MANAGEMENT_URL": SHARED_MANAGEMENT,
            "RABBITMQ_USER": "guest",
            "RABBITMQ_PASSWORD": "guest",
        }
    return {"RABBITMQ_MANAGEMENT_URL": ""}


def backup_env(db: Database, backups: Path, **extra: str) -> dict[str, str]:
    return {**db.env, "BACKUP_DIR": str(backups), "RETENTION_DAYS": "7", **extra}


def dumps(backups: Path) -> list[Path]:
    return sorted(backups.glob("mastertrade_*.dump"))


def test_a_dump_restores_identical_data(database: Database, tmp_path: Path) -> None:
    before = database.snapshot()
    assert len(before["trades"]) == 3 and len(before["strategies"]) == 2

    backed_up = run_script("backup.sh", backup_env(database, tmp_path, **rabbitmq_env()))
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    (dump,) = dumps(tmp_path)
    assert f"wrote {dump}" in backed_up.stdout
    assert not list(tmp_path.glob(".*")), "no temporary file is left behind"
    if shared_management_answers():
        (definitions,) = tmp_path.glob("rabbitmq_definitions_*.json")
        assert "rabbit_version" in json.loads(definitions.read_text())
    else:
        assert "skipped the RabbitMQ definitions export" in backed_up.stdout
        assert not list(tmp_path.glob("rabbitmq_definitions_*"))

    database.psql(
        """
        UPDATE trades SET price = price * 2, details = '{"tampered": true}' WHERE id = 1;
        DELETE FROM trades WHERE id = 2;
        INSERT INTO trades (symbol, price, quantity, executed_at)
            VALUES ('DOGEUSDT', 0.1, 5, now());
        ALTER TABLE strategies ADD COLUMN retired boolean DEFAULT true;
        DROP TABLE trades;
        """
    )
    assert database.snapshot() != before

    restored = run_script("restore.sh", {**database.env, "BACKUP_DIR": str(tmp_path)}, dump.name)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"restored {dump}" in restored.stdout
    after = database.snapshot()
    for table in [*TABLES, "sequences"]:
        assert after[table] == before[table], table
    assert after == before


def test_restore_file_may_come_from_the_environment(database: Database, tmp_path: Path) -> None:
    env = backup_env(database, tmp_path, RABBITMQ_MANAGEMENT_URL="")
    assert run_script("backup.sh", env).returncode == 0
    before = database.snapshot()
    database.psql("TRUNCATE trades")
    (dump,) = dumps(tmp_path)
    restored = run_script("restore.sh", {**env, "RESTORE_FILE": dump.name})
    assert restored.returncode == 0, restored.stderr
    assert database.snapshot() == before


def test_a_missing_dump_is_refused_and_nothing_changes(database: Database, tmp_path: Path) -> None:
    before = database.snapshot()
    env = {**database.env, "BACKUP_DIR": str(tmp_path)}
    missing = run_script("restore.sh", env, "mastertrade_19990101T000000Z.dump")
    assert missing.returncode == 1
    assert (
        f"refusing to restore: backup file {tmp_path}/mastertrade_19990101T000000Z.dump "
        "does not exist; nothing was restored"
    ) in missing.stderr
    unnamed = run_script("restore.sh", env)
    assert unnamed.returncode == 2
    assert "no backup named" in unnamed.stderr
    assert database.snapshot() == before


def test_retention_deletes_only_backups_older_than_the_limit(
    database: Database, tmp_path: Path
) -> None:
    now = time.time()
    aged = {
        "mastertrade_20260101T020000Z.dump": 8,
        "rabbitmq_definitions_20260101T020000Z.json": 8,
        ".mastertrade_20260101T020000Z.dump.partial": 8,
        "mastertrade_20260105T020000Z.dump": 6,
        "rabbitmq_definitions_20260105T020000Z.json": 6,
        "notes-kept-by-an-operator.txt": 30,
    }
    for name, days in aged.items():
        path = tmp_path / name
        path.write_text("old")
        os.utime(path, (now - days * DAY, now - days * DAY))

    done = run_script("backup.sh", backup_env(database, tmp_path, RABBITMQ_MANAGEMENT_URL=""))
    assert done.returncode == 0, done.stdout + done.stderr
    left = {path.name for path in tmp_path.iterdir()}
    expired = {name for name, days in aged.items() if days > 7 and not name.endswith(".txt")}
    assert not expired & left
    assert {name for name in aged if name not in expired} <= left
    for name in sorted(expired):
        assert f"deleted {tmp_path / name} (older than 7 days)" in done.stdout
    assert len(dumps(tmp_path)) == 2, "today's dump and the 6-day-old one"


def test_a_failed_dump_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    env = {**PG, "PGDATABASE": "no_such_database_here", "BACKUP_DIR": str(tmp_path)}
    failed = run_script("backup.sh", env)
    assert failed.returncode != 0
    assert 'database "no_such_database_here" does not exist' in failed.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_management_api_fails_the_run_but_keeps_the_dump(
    database: Database, tmp_path: Path
) -> None:
    env = backup_env(
        database,
        tmp_path,
        RABBITMQ_MANAGEMENT_URL="http://127.0.0.1:9",
        RABBITMQ_USER="mastertrade",
        RABBITMQ_PASSWORD="secret",
    )
    done = run_script("backup.sh", env)
    assert done.returncode == 1
    assert "could not export RabbitMQ definitions from http://127.0.0.1:9" in done.stderr
    assert len(dumps(tmp_path)) == 1
    assert not list(tmp_path.glob("rabbitmq_definitions_*")) and not list(tmp_path.glob(".*"))


# A private broker with the management plugin (its own ports, data directory and plugins file;
# the machine's broker is never touched), for the definitions export over the real API.
PRIVATE_USER, PRIVATE_PASSWORD = "backupcheck", "Backup0Check"


def management_config(amqp_port: int, management_port: int) -> str:
    listener = f'{{listener, [{{port, {management_port}}}, {{ip, "127.0.0.1"}}]}}'
    return (
        f"[{{rabbit, [{{tcp_listeners, [{amqp_port}]}}, {{loopback_users, []}}]}},\n"
        f" {{rabbitmq_management, [{listener}]}}].\n"
    )


def wait_for_management(url: str, deadline: float) -> None:
    request = urllib.request.Request(f"{url}/api/overview")
    token = base64.b64encode(f"{PRIVATE_USER}:{PRIVATE_PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def management_url() -> Iterator[str]:
    rabbit = PrivateRabbit(
        config_for=management_config,
        plugins=["rabbitmq_management"],
        env={"RABBITMQ_DEFAULT_USER": PRIVATE_USER, "RABBITMQ_DEFAULT_PASS": PRIVATE_PASSWORD},
    )
    try:
        rabbit.start()
        url = f"http://127.0.0.1:{rabbit.management_port}"
        wait_for_management(url, time.monotonic() + 90)
        yield url
    finally:
        rabbit.remove()


def test_rabbitmq_definitions_are_exported_from_the_management_api(
    database: Database, tmp_path: Path, management_url: str
) -> None:
    rabbitmq = {
        "RABBITMQ_MANAGEMENT_URL": management_url,
        "RABBITMQ_USER": PRIVATE_USER,
        "RABBITMQ_PASSWORD": PRIVATE_PASSWORD,
    }
    done = run_script("backup.sh", backup_env(database, tmp_path, **rabbitmq))
    assert done.returncode == 0, done.stdout + done.stderr
    (definitions,) = tmp_path.glob("rabbitmq_definitions_*.json")
    assert f"wrote {definitions}" in done.stdout
    exported = json.loads(definitions.read_text())
    assert exported["rabbit_version"]
    assert PRIVATE_USER in {user["name"] for user in exported["users"]}
    assert definitions.name.removeprefix("rabbitmq_definitions_").removesuffix(".json") == (
        dumps(tmp_path)[0].name.removeprefix("mastertrade_").removesuffix(".dump")
    ), "the dump and the export of one run share their timestamp"

    refused = run_script(
        "backup.sh", backup_env(database, tmp_path, **{**rabbitmq, "RABBITMQ_PASSWORD": "wrong"})
    )
    assert refused.returncode == 1
    assert f"could not export RabbitMQ definitions from {management_url}" in refused.stderr
