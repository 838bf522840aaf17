"""How close the generated March 2017 is to the real one: the generator's figures beside the real ones.

The real figures were measured on real KKBox rows of March 2017 (user_logs_v2.csv user-days and
transactions_v2.csv transactions). Quantiles use numpy's default definition (linear interpolation between
order statistics), on every row of the month, quirks included. A figure is within tolerance when its
relative difference to the real one is at most the tolerance (15% for quantiles, 20% for shares); a real
figure of 0 must be matched exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv

from churn.errors import ChurnError
from churn.lake import Lake

MONTH = (20170301, 20170331)  # the real figures describe these dates (YYYYMMDD, inclusive)
QUANTILE_TOLERANCE = 0.15
SHARE_TOLERANCE = 0.20


@dataclass(frozen=True)
class Reference:
    """One real figure: `statistic` of `column` in `file` (p50/p90 a quantile, `share==v` a share)."""

    file: str
    column: str
    statistic: str
    real: float

    @property
    def tolerance(self) -> float:
        """Shares may differ by 20%, quantiles by 15% (relative)."""
        return SHARE_TOLERANCE if self.statistic.startswith("share") else QUANTILE_TOLERANCE


# The only place the real March-2017 figures live.
REFERENCES: tuple[Reference, ...] = (
    Reference("user_logs_v2.csv", "num_25", "share==0", 0.26),
    Reference("user_logs_v2.csv", "num_25", "p50", 2),
    Reference("user_logs_v2.csv", "num_25", "p90", 16),
    Reference("user_logs_v2.csv", "num_985", "share==0", 0.55),
    Reference("user_logs_v2.csv", "num_985", "p50", 0),
    Reference("user_logs_v2.csv", "num_985", "p90", 3),
    Reference("user_logs_v2.csv", "num_100", "p50", 17),
    Reference("user_logs_v2.csv", "num_100", "p90", 75),
    Reference("user_logs_v2.csv", "num_unq", "p50", 19),
    Reference("user_logs_v2.csv", "num_unq", "p90", 67),
    Reference("user_logs_v2.csv", "total_secs", "p50", 4_600),
    Reference("user_logs_v2.csv", "total_secs", "p90", 19_000),
    Reference("transactions_v2.csv", "payment_method_id", "share==41", 0.49),
    Reference("transactions_v2.csv", "is_cancel", "share==1", 0.025),
)
DATE_COLUMNS = {"user_logs_v2.csv": "date", "transactions_v2.csv": "transaction_date"}


@dataclass(frozen=True)
class Row:
    """One line of the report: the generated figure beside the real one."""

    reference: Reference
    generated: float
    difference: float  # relative: (generated - real) / real; 0 or inf when the real figure is 0
    within: bool


def statistic(values: np.ndarray, name: str) -> float:
    """`p50`/`p90`: numpy's default (linear) quantile; `share==v`: the share of values equal to v."""
    if values.size == 0:
        raise ChurnError(f"no rows to compute {name} from")
    if name.startswith("share=="):
        return float(np.mean(values == float(name.removeprefix("share=="))))
    if name.startswith("p"):
        return float(np.quantile(values, int(name[1:]) / 100))
    raise ChurnError(f"unknown statistic {name!r}")


def compare(reference: Reference, generated: float) -> Row:
    """The relative difference of a figure and whether it is within the reference's tolerance."""
    if reference.real == 0:
        difference = 0.0 if generated == 0 else float("inf")
    else:
        difference = (generated - reference.real) / abs(reference.real)
    return Row(reference, generated, difference, abs(difference) <= reference.tolerance)


def report_from_frames(frames: dict[str, pd.DataFrame]) -> list[Row]:
    """Every reference figure computed on March-2017 rows of the frames keyed by file name."""
    rows = []
    for reference in REFERENCES:
        if reference.file not in frames:
            raise ChurnError(f"realism report needs {reference.file}")
        frame = frames[reference.file]
        dates = frame[DATE_COLUMNS[reference.file]]
        march = frame.loc[(dates >= MONTH[0]) & (dates <= MONTH[1]), reference.column]
        if march.empty:
            raise ChurnError(f"{reference.file} has no rows dated {MONTH[0]}..{MONTH[1]}")
        rows.append(compare(reference, statistic(march.to_numpy(dtype=np.float64), reference.statistic)))
    return rows


def realism_report(lake: Lake) -> list[Row]:
    """The report of the March files in the lake's Bronze (only the columns the figures need are read)."""
    frames = {}
    for name, date_column in DATE_COLUMNS.items():
        columns = [date_column, *dict.fromkeys(r.column for r in REFERENCES if r.file == name)]
        options = pacsv.ConvertOptions(include_columns=columns)
        with lake.open(f"bronze/{name}", "rb") as handle:
            frames[name] = pacsv.read_csv(handle, convert_options=options).to_pandas()
    return report_from_frames(frames)


def format_report(rows: list[Row]) -> str:
    """The report as a fixed-width table, with a closing line counting the figures within tolerance."""
    lines = [
        f"{'file':<20} {'figure':<28} {'generated':>10} {'real':>10} {'diff':>8} {'tol':>5}  verdict",
    ]
    for row in rows:
        ref = row.reference
        diff = "exact" if ref.real == 0 and row.within else f"{row.difference:+.1%}"
        share = ref.statistic.startswith("share")
        lines.append(
            f"{ref.file:<20} {ref.column + ' ' + ref.statistic:<28} {_number(row.generated, share):>10} "
            f"{_number(ref.real, share):>10} {diff:>8} {ref.tolerance:>5.0%}  "
            f"{'within' if row.within else 'OUTSIDE'}"
        )
    within = sum(row.within for row in rows)
    lines.append(
        f"{within} of {len(rows)} figures within tolerance of real March 2017 "
        f"({dt.date(2017, 3, 1)}..{dt.date(2017, 3, 31)}; quantiles: numpy linear)"
    )
    return "\n".join(lines)


def _number(value: float, share: bool) -> str:
    """Shares as percentages, quantiles (counts, seconds) as plain numbers."""
    return f"{value:.1%}" if share else f"{value:,.1f}"
