"""The data gates: Great Expectations suites over Silver (`validation`, from per-part tallies in
`streaming_checks`, never a whole table in memory) and over each Gold features build. Above `data` and
`features`, whose outputs they check; only `steps` calls them.
"""
