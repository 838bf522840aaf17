"""A generator of KKBox-format data: simulated subscribers written in exactly the real file formats.

`profiles` sizes a run, `timeline` simulates subscriptions and churn decisions, `listening` the daily
logs, `members` the member table, `quirks` the known defects of the real files, and `writer` puts the
history dump or the daily drops into Bronze.
"""
