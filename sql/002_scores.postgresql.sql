-- Nightly scores. `churn_scores` is partitioned by score date: a publish loads a new table, then swaps it
-- in for the date in one transaction (readers see the old day or the new one, never a mix), and retention
-- drops whole partitions. Partitions carry their own indexes, built after the load: UNIQUE (msno) for
-- lookups and (churn_probability DESC, msno) for pages; the parent has none, so attaching a partition
-- never builds another.
CREATE TABLE score_runs (
    run_id             TEXT PRIMARY KEY,
    score_date         DATE NOT NULL,
    model_name         TEXT NOT NULL,
    model_version      INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('running', 'published', 'superseded', 'failed')),
    rows_scored        BIGINT,
    users_with_features BIGINT,
    started_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at        TIMESTAMPTZ,
    seconds_features   DOUBLE PRECISION,
    seconds_predict    DOUBLE PRECISION,
    seconds_publish    DOUBLE PRECISION,
    data_version       TEXT,
    feature_spec_hash  TEXT,
    code_version       TEXT,
    airflow_dag_id     TEXT,
    airflow_run_id     TEXT,
    error              TEXT
);
CREATE INDEX score_runs_date ON score_runs (score_date, started_at DESC);
-- At most one published run per date: the one whose rows are in churn_scores.
CREATE UNIQUE INDEX score_runs_one_published ON score_runs (score_date) WHERE status = 'published';

CREATE TABLE churn_scores (
    score_date        DATE NOT NULL,
    msno              TEXT NOT NULL,
    churn_probability DOUBLE PRECISION NOT NULL CHECK (churn_probability >= 0 AND churn_probability <= 1),
    risk_band         TEXT NOT NULL,
    model_version     INTEGER NOT NULL,
    run_id            TEXT NOT NULL
) PARTITION BY LIST (score_date);

-- The latest published score of every user (a user not active on the newest date keeps an older score).
CREATE VIEW latest_scores AS
SELECT DISTINCT ON (msno) msno, score_date, churn_probability, risk_band, model_version, run_id
FROM churn_scores
ORDER BY msno, score_date DESC;
