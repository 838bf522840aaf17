"""The base error of the platform: anything raised as a ChurnError is a user-facing, one-line reason.

The CLI prints such errors as `churn: error: <reason>` and exits non-zero; anything else is a bug and
keeps its traceback.
"""


class ChurnError(Exception):
    """An expected failure with a message that says what is wrong and where (file, line, field)."""
