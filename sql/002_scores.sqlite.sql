-- Nightly scores, SQLite fallback: one table; a publish deletes and inserts a date's rows in one
-- transaction (readers see the old day or the new one), retention deletes old dates.
CREATE TABLE score_runs (
    run_id             TEXT PRIMARY KEY,
    score_date         DATE NOT NULL,
    model_name         TEXT NOT NULL,
    model_version      INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('running', 'published', 'superseded', 'failed')),
    rows_scored        INTEGER,
    users_with_features INTEGER,
    started_at         TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    finished_at        TIMESTAMP,
    seconds_features   REAL,
    seconds_predict    REAL,
    seconds_publish    REAL,
    data_version       TEXT,
    feature_spec_hash  TEXT,
    code_version       TEXT,
    airflow_dag_id     TEXT,
    airflow_run_id     TEXT,
    error              TEXT
);
CREATE INDEX score_runs_date ON score_runs (score_date, started_at DESC);
CREATE UNIQUE INDEX score_runs_one_published ON score_runs (score_date) WHERE status = 'published';

CREATE TABLE churn_scores (
    score_date        DATE NOT NULL,
    msno              TEXT NOT NULL,
    churn_probability REAL NOT NULL CHECK (churn_probability >= 0 AND churn_probability <= 1),
    risk_band         TEXT NOT NULL,
    model_version     INTEGER NOT NULL,
    run_id            TEXT NOT NULL,
    PRIMARY KEY (score_date, msno)
);
CREATE INDEX churn_scores_msno ON churn_scores (msno, score_date DESC);
CREATE INDEX churn_scores_rank ON churn_scores (score_date, churn_probability DESC, msno);

CREATE VIEW latest_scores AS
SELECT s.msno, s.score_date, s.churn_probability, s.risk_band, s.model_version, s.run_id
FROM churn_scores AS s
WHERE s.score_date = (SELECT max(l.score_date) FROM churn_scores AS l WHERE l.msno = s.msno);
