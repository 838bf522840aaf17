"""Gold: what the model sees.

`spec` (the declarative features and their hash), `labels` (the WSDM churn rule, cohort months),
`gold` (labels and features built per Silver bucket), `live` (the same features for one user, and the
live prediction the API serves).
"""
