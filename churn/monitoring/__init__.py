"""Monitoring: `weekly` (the weekly run), `drift` (Evidently against the champion's reference),
`performance` (realised figures of matured cohorts), `predlog` (the live prediction log), `reports`
(report pages), `monitortables` (the monitoring rows) and `monitorreads` (the API's reads of them).
"""
