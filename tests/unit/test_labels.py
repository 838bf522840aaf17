"""The WSDM churn rule on hand-written histories: every branch of the rule, and its input checks."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from churn.errors import ChurnError
from churn.features.labels import label_cohort, parse_cohort

EPOCH = dt.date(1970, 1, 1)


def day(text: str) -> int:
    return (dt.date.fromisoformat(text) - EPOCH).days


def tx(*rows: tuple[str, str, str, int, int, int, int]) -> pa.Table:
    """Rows of (user, transaction_date, expire_date, is_cancel, price, plan_days, method)."""
    users, dates, expires, cancels, prices, days, methods = zip(*rows, strict=True)
    return pa.table(
        {
            "msno": list(users),
            "transaction_date": pa.array([day(d) for d in dates], pa.int32()).cast(pa.date32()),
            "membership_expire_date": pa.array([day(d) for d in expires], pa.int32()).cast(pa.date32()),
            "is_cancel": pa.array(cancels, pa.int8()),
            "plan_list_price": pa.array(prices, pa.int32()),
            "payment_plan_days": pa.array(days, pa.int16()),
            "payment_method_id": pa.array(methods, pa.int16()),
        }
    )


def renewal(user: str, on: str, until: str) -> tuple[str, str, str, int, int, int, int]:
    return (user, on, until, 0, 149, 30, 41)


def cancel(user: str, on: str, until: str) -> tuple[str, str, str, int, int, int, int]:
    return (user, on, until, 1, 149, 30, 41)


def labels(table: pa.Table, cohort: str = "2017-03") -> dict[str, int]:
    frame = label_cohort(table, cohort)
    return dict(zip(frame["msno"], frame["is_churn"], strict=True))


def test_renewal_within_30_days_is_not_churn() -> None:
    history = tx(renewal("a", "2017-02-10", "2017-03-12"), renewal("a", "2017-04-05", "2017-05-05"))
    assert labels(history) == {"a": 0}  # gap 24 days


def test_renewal_on_day_30_is_churn_and_day_29_is_not() -> None:
    history = tx(
        renewal("late", "2017-02-10", "2017-03-12"), renewal("late", "2017-04-11", "2017-05-11"),  # gap 30
        renewal("ok", "2017-02-10", "2017-03-12"), renewal("ok", "2017-04-10", "2017-05-10"),  # gap 29
    )  # fmt: skip
    assert labels(history) == {"late": 1, "ok": 0}


def test_early_renewal_is_not_churn() -> None:
    history = tx(renewal("a", "2017-02-20", "2017-03-22"), renewal("a", "2017-03-15", "2017-04-21"))
    assert labels(history) == {"a": 0}  # negative gap


def test_no_later_transaction_is_churn() -> None:
    assert labels(tx(renewal("a", "2017-02-20", "2017-03-22"))) == {"a": 1}


def test_cancel_moves_the_expiry_back() -> None:
    # Expiry 03-22; a cancel on 03-05 ends it on 03-05; renewing on 04-10 is 36 days after that: churn.
    # Without the cancel the same renewal would be 19 days after 03-22: not churn.
    history = tx(
        renewal("a", "2017-02-20", "2017-03-22"), cancel("a", "2017-03-05", "2017-03-05"),
        renewal("a", "2017-04-10", "2017-05-10"),
        renewal("b", "2017-02-20", "2017-03-22"), renewal("b", "2017-04-10", "2017-05-10"),
    )  # fmt: skip
    assert labels(history) == {"a": 1, "b": 0}


def test_consecutive_cancels_take_the_earliest_expiry() -> None:
    history = tx(
        renewal("a", "2017-02-20", "2017-03-22"),
        cancel("a", "2017-03-10", "2017-03-15"),
        cancel("a", "2017-03-11", "2017-03-08"),
        cancel("a", "2017-03-12", "2017-03-20"),  # later than the current expiry: ignored
        renewal("a", "2017-04-08", "2017-05-08"),  # 31 days after 03-08
    )
    assert labels(history) == {"a": 1}


def test_a_cancel_alone_is_not_churn_when_renewed_in_time() -> None:
    history = tx(
        renewal("a", "2017-02-20", "2017-03-22"),
        cancel("a", "2017-03-10", "2017-03-10"),
        renewal("a", "2017-03-25", "2017-04-24"),
    )
    assert labels(history) == {"a": 0}


def test_cohort_is_decided_by_the_transactions_up_to_the_month_before() -> None:
    history = tx(
        renewal("march", "2017-02-01", "2017-03-03"),
        renewal("april", "2017-02-25", "2017-04-02"),
        renewal("renewed_before", "2017-01-20", "2017-03-05"),
        renewal("renewed_before", "2017-02-27", "2017-04-05"),  # by end of Feb it expires in April
        cancel("cancelled_in_feb", "2017-02-10", "2017-02-10"),
    )
    assert set(labels(history)) == {"march"}
    assert set(labels(history, "2017-04")) == {"april", "renewed_before"}


def test_same_day_order_renewal_before_cancel_for_one_signature() -> None:
    # Same day, same signature: the renewal comes first and the cancel last, whatever the file order, so
    # the expiry after January is the cancel's (01-10), not the renewal's (02-09): not in February's cohort.
    rows = [renewal("a", "2017-01-10", "2017-02-09"), cancel("a", "2017-01-10", "2017-01-10")]
    assert labels(tx(*rows), "2017-02") == {}
    assert labels(tx(*reversed(rows)), "2017-02") == {}
    assert labels(tx(rows[0]), "2017-02") == {"a": 1}  # without the cancel the user would be in it


def test_same_day_order_larger_signature_text_first() -> None:
    # Signatures "1493041" and "993041": as text "993041" is larger, so it comes first; the 149 plan's
    # expiry (last row) is the user's expiry.
    history = tx(
        ("a", "2017-02-15", "2017-03-17", 0, 149, 30, 41),
        ("a", "2017-02-15", "2017-04-20", 0, 99, 30, 41),
    )
    assert set(labels(history, "2017-03")) == {"a"}
    assert labels(history, "2017-04") == {}


def test_bad_cohort_and_missing_columns_are_clear_errors() -> None:
    with pytest.raises(ChurnError, match="cohort must be a month like 2017-03"):
        parse_cohort("March")
    with pytest.raises(ChurnError, match="transactions lack column"):
        label_cohort(pa.table({"msno": ["a"]}), "2017-03")
    assert parse_cohort("2016-02") == (dt.date(2016, 2, 1), dt.date(2016, 2, 29))


def test_same_day_cancels_end_with_the_earliest_expiry_whatever_the_stored_order() -> None:
    # Two same-signature cancels on 02-05: the earlier expiry (02-10) wins, so by the end of February the
    # membership expired in February: not in March's cohort, in either stored order.
    rows = [
        renewal("a", "2017-01-20", "2017-03-20"),
        cancel("a", "2017-02-05", "2017-03-15"),
        cancel("a", "2017-02-05", "2017-02-10"),
    ]
    assert labels(tx(*rows)) == {}
    assert labels(tx(rows[0], rows[2], rows[1])) == {}


def test_same_day_renewals_end_with_the_latest_expiry() -> None:
    rows = [
        renewal("a", "2017-02-05", "2017-03-07"),
        renewal("a", "2017-02-05", "2017-04-06"),
    ]
    assert labels(tx(*rows), "2017-04") == {"a": 1}
    assert labels(tx(*reversed(rows)), "2017-04") == {"a": 1}
    assert labels(tx(*rows)) == {}
