-- Every pipeline run (ingest, features, labels, validate, train, score, drift) leaves one row here:
-- what it read, what it wrote, counts, versions and timings, so any output can be traced to its inputs.
-- SQLite fallback of the PostgreSQL migration of the same number (JSON kept as text).
CREATE TABLE pipeline_runs (
    run_id          TEXT PRIMARY KEY,
    step            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    finished_at     TIMESTAMP,
    params          TEXT NOT NULL DEFAULT '{}',
    summary         TEXT NOT NULL DEFAULT '{}',
    error           TEXT,
    code_version    TEXT,
    airflow_run_id  TEXT
);

CREATE INDEX pipeline_runs_step_started ON pipeline_runs (step, started_at DESC);
