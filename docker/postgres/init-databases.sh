#!/bin/sh
# First start of the PostgreSQL volume: the databases of the platform next to `churn` (the scores):
# `airflow` (Airflow's metadata) and `mlflow` (tracking and registry). Owned by the same role.
set -eu
for db in airflow mlflow; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname churn \
    -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname churn -c "CREATE DATABASE $db"
done
