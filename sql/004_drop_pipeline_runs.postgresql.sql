-- pipeline_runs (001) was never written: run lineage lives in score_runs, the lake's manifests and
-- MLflow. Dropped rather than left as a table that looks like a record of runs and holds none.
DROP TABLE IF EXISTS pipeline_runs;
