"""The model: `pipeline` (the estimator registered), `params`, `training` and `evaluation`, `registry`
(MLflow), `champion` (the one loader scoring, the API, the training gate and monitoring share) and
`serving` (the champion a long-running process holds).
"""
