-- Each run of the backup CronJob (charts/mastertrade/files/backup/backup.sh) records its outcome
-- here; the risk manager exports the last success and the last outcome as metrics, which the
-- "backup failing or missing" alerts read.
CREATE TABLE backup_runs (
    id          BIGSERIAL   PRIMARY KEY,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    succeeded   BOOLEAN     NOT NULL,
    detail      TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX backup_runs_recent ON backup_runs (finished_at DESC);
