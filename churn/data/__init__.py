"""Bronze -> Silver, and the checks on the lake.

`kkbox` (the files' formats), `contracts` and `events` (row contracts), `csvblocks` and `archives`
(reading what people download), `ingest` (the writer), `silver` (Silver's read side: everything
downstream reads Silver through it), `validation` and `streaming_checks` (the Silver and Gold gates).
"""
