"""The nightly scores: `scoring` (every active user, banded by `bands`), `scoredb` (the score tables:
runs, partitions, atomic publication) and `scorereads` (the API's reads of them).
"""
