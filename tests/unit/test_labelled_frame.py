"""The training frame: labels joined to the eve's features in label order, float32, without msno for
training, and a user twice on either side refused rather than counted twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from churn.errors import ChurnError
from churn.features.gold import features_prefix
from churn.features.labels import snapshot_date
from churn.features.spec import FEATURE_NAMES
from churn.lake import Lake
from churn.model.training import labelled_frame

COHORT = "2017-03"


def write(lake: Lake, labels: list[str], featured: list[str]) -> None:
    lake.write_parquet(
        f"gold/labels/cohort={COHORT}/part-0.parquet",
        pa.table({"msno": labels, "user_id": np.arange(len(labels), dtype=np.int64) + 10,
                  "is_churn": np.array([i % 2 for i in range(len(labels))], dtype=np.int8),
                  "expiry_date": pa.array([dt.date(2017, 3, 1 + i) for i in range(len(labels))])}),
    )  # fmt: skip
    columns = {"msno": featured, "user_id": np.arange(len(featured), dtype=np.int64)}
    columns |= {name: np.arange(len(featured), dtype=np.float64) + 0.5 for name in FEATURE_NAMES}
    lake.write_parquet(f"{features_prefix(snapshot_date(COHORT))}/part-0.parquet", pa.table(columns))


def test_label_order_users_without_features_and_float32(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    write(lake, ["d", "a", "c", "b"], ["b", "a", "d"])  # c has no features as of the eve
    frame = labelled_frame(lake, COHORT)
    assert frame["msno"].tolist() == ["d", "a", "c", "b"]
    assert frame["is_churn"].tolist() == [0, 1, 0, 1]
    assert frame["tenure_days"].tolist()[:2] == [2.5, 1.5] and np.isnan(frame["tenure_days"][2])
    assert {str(frame[name].dtype) for name in FEATURE_NAMES} == {"float32"}
    assert "msno" not in labelled_frame(lake, COHORT, with_msno=False).columns


@pytest.mark.parametrize(
    ("labels", "featured", "side"), [(["a", "a"], ["a"], "labels"), (["a", "b"], ["a", "b", "a"], "features")]
)
def test_a_user_twice_is_refused(tmp_path: Path, labels: list[str], featured: list[str], side: str) -> None:
    lake = Lake(str(tmp_path))
    write(lake, labels, featured)
    with pytest.raises(ChurnError, match=f"Gold {side} .* hold a user more than once"):
        labelled_frame(lake, COHORT)
