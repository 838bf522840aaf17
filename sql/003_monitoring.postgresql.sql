-- Weekly monitoring: one drift summary per week (the report itself lives in the lake under
-- reports/drift/week=<D>/) and the realised performance of each cohort's published scores once its
-- outcomes are known. A rerun of a week or a cohort replaces its row (upsert on the key).
CREATE TABLE drift_reports (
    week_ending         DATE PRIMARY KEY,
    model_name          TEXT NOT NULL,
    model_version       INTEGER NOT NULL,
    score_dates         DATE[] NOT NULL,
    reference_rows      INTEGER NOT NULL,
    current_rows        INTEGER NOT NULL,
    live_rows           INTEGER NOT NULL,
    drift_share         DOUBLE PRECISION NOT NULL CHECK (drift_share >= 0 AND drift_share <= 1),
    drifted_features    TEXT[] NOT NULL,
    dataset_drift       BOOLEAN NOT NULL,
    score_drift         DOUBLE PRECISION,
    live_drift_share    DOUBLE PRECISION,
    performance_alert   BOOLEAN NOT NULL DEFAULT false,
    alert               BOOLEAN NOT NULL,
    report_uri          TEXT NOT NULL,
    summary             JSONB NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    churn_run_id        TEXT,
    airflow_run_id      TEXT
);

CREATE TABLE model_performance (
    cohort              TEXT PRIMARY KEY,
    score_date          DATE NOT NULL,
    model_name          TEXT NOT NULL,
    model_version       INTEGER NOT NULL,
    users               INTEGER NOT NULL,
    churn_rate          DOUBLE PRECISION NOT NULL,
    log_loss            DOUBLE PRECISION NOT NULL,
    roc_auc             DOUBLE PRECISION,
    validation_log_loss DOUBLE PRECISION,
    degradation         DOUBLE PRECISION,
    degraded            BOOLEAN NOT NULL,
    computed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    week_ending         DATE NOT NULL
);
