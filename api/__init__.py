"""The read-mostly results API over the scores database (FastAPI)."""
