"""Raw KKBox events as typed records (pydantic), derived from the same table specs and row contracts as
the ingest: a value the ingest would quarantine is refused here, with the field named.

Dates are accepted in the KKBox form (`20170331`, as in the CSV files) or ISO (`2017-03-31`). The API
takes these models as request bodies; `churn.scores.live` turns validated records into Silver-shaped tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from churn.data import kkbox
from churn.data.contracts import FIELDS
from churn.data.contracts import Field as Contract

MSNO_PATTERN = r"^[A-Za-z0-9+/]{43}=$"
"""A KKBox user id as the API accepts it: 44 base64 characters, the last one '='."""


def _kkbox_date(value: Any) -> Any:
    """20170331 / "20170331" -> date; ISO strings and dates pass through to pydantic."""
    text = str(value)
    if isinstance(value, int | str) and len(text) == 8 and text.isdigit():
        try:
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            raise ValueError(f"{value} is not a valid YYYYMMDD date") from None
    return value


KKBoxDate = Annotated[dt.date, BeforeValidator(_kkbox_date)]


def _within(low: dt.date, high: dt.date) -> Any:
    def check(value: dt.date) -> dt.date:
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return AfterValidator(check)


def _annotation(arrow_type: Any, contract: Contract | None) -> Any:
    """The pydantic type of one column: its Silver type narrowed by the contract's bounds."""
    import pyarrow as pa

    constraints: dict[str, Any] = {}
    if contract is not None and contract.low is not None and not isinstance(contract.low, dt.date):
        constraints = {"ge": contract.low, "le": contract.high}
    if pa.types.is_date(arrow_type):
        base: Any = KKBoxDate
        if contract is not None and isinstance(contract.low, dt.date) and isinstance(contract.high, dt.date):
            base = Annotated[KKBoxDate, _within(contract.low, contract.high)]
    elif pa.types.is_integer(arrow_type):
        base = int
    elif pa.types.is_floating(arrow_type):
        base = float
        if contract is not None and contract.finite:
            constraints["allow_inf_nan"] = False
    else:
        base = str
    if contract is not None and contract.allowed is not None:
        from typing import Literal

        base = Literal[contract.allowed]
    annotated = Annotated[base, Field(**constraints)] if constraints else base
    return annotated | None if contract is not None and contract.nullable else annotated


def _event_model(table: kkbox.Table, name: str, doc: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for column, arrow_type in table.columns:
        if column == "msno":
            continue
        contract = FIELDS[table.name].get(column)
        annotation = _annotation(arrow_type, contract)
        default = None if contract is not None and contract.nullable else ...
        fields[column] = (annotation, default)
    model = create_model(
        name,
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        __doc__=doc,
        **fields,
    )
    return model


MemberEvent = _event_model(kkbox.MEMBERS, "MemberEvent", "A members_v3.csv row (without msno).")
TransactionEvent = _event_model(
    kkbox.TRANSACTIONS, "TransactionEvent", "A transactions.csv row (without msno)."
)
UserLogEvent = _event_model(kkbox.USER_LOGS, "UserLogEvent", "A user_logs.csv row (without msno).")
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "members": MemberEvent,
    "transactions": TransactionEvent,
    "user_logs": UserLogEvent,
}
