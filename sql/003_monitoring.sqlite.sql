-- Weekly monitoring, SQLite fallback: the same tables; arrays are JSON text.
CREATE TABLE drift_reports (
    week_ending         DATE PRIMARY KEY,
    model_name          TEXT NOT NULL,
    model_version       INTEGER NOT NULL,
    score_dates         TEXT NOT NULL,
    reference_rows      INTEGER NOT NULL,
    current_rows        INTEGER NOT NULL,
    live_rows           INTEGER NOT NULL,
    drift_share         REAL NOT NULL CHECK (drift_share >= 0 AND drift_share <= 1),
    drifted_features    TEXT NOT NULL,
    dataset_drift       BOOLEAN NOT NULL,
    score_drift         REAL,
    live_drift_share    REAL,
    performance_alert   BOOLEAN NOT NULL DEFAULT 0,
    alert               BOOLEAN NOT NULL,
    report_uri          TEXT NOT NULL,
    summary             TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    churn_run_id        TEXT,
    airflow_run_id      TEXT
);

CREATE TABLE model_performance (
    cohort              TEXT PRIMARY KEY,
    score_date          DATE NOT NULL,
    model_name          TEXT NOT NULL,
    model_version       INTEGER NOT NULL,
    users               INTEGER NOT NULL,
    churn_rate          REAL NOT NULL,
    log_loss            REAL NOT NULL,
    roc_auc             REAL,
    validation_log_loss REAL,
    degradation         REAL,
    degraded            BOOLEAN NOT NULL,
    computed_at         TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    week_ending         DATE NOT NULL
);
