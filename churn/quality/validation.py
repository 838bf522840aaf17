"""Data validation gate: Great Expectations suites over Silver and Gold, with Data Docs in the lake.

Each table has one suite. Every expectation carries a severity: `critical` failures stop the pipeline
(`churn validate` exits non-zero), `warning` failures are reported only. What is checked:
keys present and unique (one row per user-day in logs), values within range and allowed categories, dates
not after the run's date (and, given one, logs reaching it: freshness), row counts within bounds of the
last passing run, and for Gold no feature that is all null or constant. A table Silver does not hold at
all (a partial download) is reported as absent: its Silver suite is not run and the Gold checks of its
feature group are left out, as are the listening windows reaching before Silver's first user-log day
(those features are missing by design, see `churn.features.spec`).

No table is loaded whole: `churn.quality.streaming_checks` computes each expectation's result part by part
(Parquet statistics first, then bounded batches of only the needed columns, keys per bucket) and keeps
each part's tallies, so a run reads only the parts added since the last one; Great Expectations defines
the suites and renders the Data Docs from those results.

Results go to `reports/validation/<stage>/<date or run>/`: `summary.json` and the Data Docs site
(`index.html` and its pages), rendered by Great Expectations into a temporary folder, then copied into
the lake (local or S3). Row counts of a passing run are kept in `reports/validation/<stage>/_row_counts.json`.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn.data.kkbox import TABLES
from churn.data.silver import silver_first_day, silver_tables
from churn.errors import ChurnError
from churn.features.gold import features_prefix
from churn.features.spec import FEATURE_NAMES, GROUP_TABLES, SPEC, uncovered_features
from churn.lake import Lake, stamp_of
from churn.logs import Progress
from churn.quality import streaming_checks as checks

log = logging.getLogger(__name__)

EARLIEST = dt.date(2004, 1, 1)
RATIO_FEATURES = [n for n in FEATURE_NAMES if "_ratio_" in n]
SHOWN_VALUES = 5


class ValidationFailed(ChurnError):  # noqa: N818 (reads as the event it reports)
    """A critical expectation failed; the message lists each failure with a few offending values."""


@dataclass
class Failure:
    """One failed expectation."""

    table: str
    expectation: str
    column: str
    severity: str
    detail: str

    def line(self) -> str:
        """How the failure is printed: table, expectation, column, severity, offending values."""
        where = f"({self.column})" if self.column else ""
        return f"{self.table}: {self.expectation}{where} [{self.severity}] {self.detail}"


@dataclass
class ValidationReport:
    """Outcome of one `churn validate` run."""

    stage: str
    label: str
    rows: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    failures: list[Failure] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # tables Silver does not hold: reported, not failed
    docs_uri: str = ""
    seconds: float = 0.0

    @property
    def critical(self) -> list[Failure]:
        """Failures that stop the pipeline."""
        return [f for f in self.failures if f.severity == "critical"]


def _gx() -> tuple[Any, Any]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


# -- suites -------------------------------------------------------------------------------------------
def _bounds(gxe: Any, table: str, rows_before: int | None, stage: str) -> list[Any]:
    if rows_before is None:
        return [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    if stage == "silver":  # Silver only grows; a big jump is worth a look
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=rows_before),
            gxe.ExpectTableRowCountToBeBetween(max_value=3 * rows_before + 1000, severity="warning"),
        ]
    return [gxe.ExpectTableRowCountToBeBetween(min_value=rows_before // 2, max_value=2 * rows_before + 1000)]


def silver_suite(table: str, as_of: dt.date | None, rows_before: int | None) -> list[Any]:
    """Expectations of a Silver table (dates as pandas timestamps).

    With `as_of` D, user_logs must reach D (freshness). Rows dated after D are not an error here: a
    backfill validates an older day after newer drops arrived, and features never read past their D.
    """
    _, gxe = _gx()
    last = pd.Timestamp(dt.date(2030, 12, 31))
    run_day = pd.Timestamp(as_of) if as_of is not None else None
    checks = [
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        *_bounds(gxe, table, rows_before, "silver"),
    ]
    if table == "members":
        checks += [
            gxe.ExpectColumnValuesToBeUnique(column="user_id"),
            gxe.ExpectColumnValuesToBeInSet(column="gender", value_set=["male", "female"]),
            gxe.ExpectColumnValuesToBeBetween(column="registered_via", min_value=0, max_value=999),
            gxe.ExpectColumnValuesToBeBetween(column="city", min_value=0, max_value=999),
            gxe.ExpectColumnValuesToBeBetween(
                column="registration_init_time", min_value=pd.Timestamp("1990-01-01"), max_value=last
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="bd", min_value=0, max_value=100, mostly=0.95, severity="warning"
            ),
        ]
    elif table == "transactions":
        checks += [
            gxe.ExpectColumnValuesToBeInSet(column="is_cancel", value_set=[0, 1]),
            gxe.ExpectColumnValuesToBeInSet(column="is_auto_renew", value_set=[0, 1]),
            gxe.ExpectColumnValuesToBeBetween(column="payment_plan_days", min_value=0, max_value=9999),
            gxe.ExpectColumnValuesToBeBetween(column="plan_list_price", min_value=0, max_value=999_999),
            gxe.ExpectColumnValuesToBeBetween(column="actual_amount_paid", min_value=0, max_value=999_999),
            gxe.ExpectColumnValuesToBeBetween(
                column="transaction_date", min_value=pd.Timestamp(EARLIEST), max_value=last
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="membership_expire_date",
                min_value=pd.Timestamp("2004-01-01"),
                mostly=0.99,
                severity="warning",
            ),
        ]
    else:
        checks += [
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "date"]),
            gxe.ExpectColumnValuesToBeBetween(
                column="date", min_value=pd.Timestamp(EARLIEST), max_value=last
            ),
            *[
                gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0)
                for c in ("num_25", "num_50", "num_75", "num_985", "num_100", "num_unq")
            ],
            gxe.ExpectColumnValuesToBeBetween(
                column="total_secs", min_value=0, max_value=86_400, mostly=0.99, severity="warning"
            ),
        ]
        if run_day is not None:  # freshness: the logs reach the run's date
            checks.append(gxe.ExpectColumnMaxToBeBetween(column="date", min_value=run_day))
    return checks


def gold_suite(
    rows_before: int | None, absent: Sequence[str] = (), uncovered: Sequence[str] = ()
) -> list[Any]:
    """Expectations of the Gold features: keys, no all-null or constant feature, sane ranges; the features
    of an `absent` Silver table, and the `uncovered` ones (windows before the logs begin), are missing
    by design, so none of them is required to vary."""
    _, gxe = _gx()
    varying = [f.name for f in SPEC if GROUP_TABLES[f.group] not in absent and f.name not in uncovered]
    checks = [
        gxe.ExpectColumnValuesToNotBeNull(column="msno"),
        gxe.ExpectColumnValuesToBeUnique(column="msno"),
        gxe.ExpectColumnValueLengthsToEqual(column="msno", value=44),
        gxe.ExpectColumnValuesToBeUnique(column="user_id"),
        *_bounds(gxe, "features", rows_before, "gold"),
        *[gxe.ExpectColumnUniqueValueCountToBeBetween(column=name, min_value=2) for name in varying],
        *[
            gxe.ExpectColumnValuesToBeBetween(
                column=name, min_value=0, max_value=1, mostly=0.999, severity="warning"
            )
            for name in RATIO_FEATURES
        ],
        gxe.ExpectColumnValuesToBeBetween(column="age", min_value=1, max_value=100),
        gxe.ExpectColumnValuesToBeBetween(column="tenure_days", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="days_since_transaction", min_value=0),
    ]
    return checks


# -- running -------------------------------------------------------------------------------------------
def _severity(config: Any) -> str:
    return str(getattr(config.severity, "value", config.severity)).lower()


def _identities(table: checks.TableParts) -> set[str]:
    """The cache keys a table's current parts and groups use (older ones are dropped)."""
    return {p.identity for p in table.parts} | {checks.group_key(g, m) for g, m in table.groups.items()}


def _detail(observed: dict[str, Any]) -> str:
    if "partial_unexpected_list" in observed:
        values = observed.get("partial_unexpected_list", [])[:SHOWN_VALUES]
        count = observed.get("unexpected_count", len(values))
        return f"{count} unexpected, e.g. {values}"
    return f"observed {observed.get('observed_value')!r}"


class _Docs:
    """An ephemeral Great Expectations context whose Data Docs site is a local folder; the results it
    renders are computed by `churn.quality.streaming_checks` (bounded batches), not by its pandas engine."""

    def __init__(self, docs: Path, run_id: str) -> None:
        gx, _ = _gx()
        from great_expectations.core.run_identifier import RunIdentifier

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        for site in list(self.context.get_site_names()):
            self.context.delete_data_docs_site(site)
        self.context.add_data_docs_site(
            site_name="churn",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
            },
        )
        self.run = RunIdentifier(run_name=run_id)

    def suite(self, name: str, expectations: list[Any]) -> list[Any]:
        """Register a suite; returns its expectations as stored (with their ids)."""
        suite = self.context.suites.add(self.gx.ExpectationSuite(name=name))
        return [suite.add_expectation(e) for e in expectations]

    def render(self, name: str, outcomes: list[checks.Outcome], rows: int) -> None:
        """Store the suite's results and build its Data Docs pages."""
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        results = [
            ExpectationValidationResult(success=o.success, expectation_config=o.expectation.configuration,
                                        result=o.result)
            for o in outcomes
        ]  # fmt: skip
        passed = sum(o.success for o in outcomes)
        statistics = {"evaluated_expectations": len(outcomes), "successful_expectations": passed,
                      "unsuccessful_expectations": len(outcomes) - passed,
                      "success_percent": 100.0 * passed / len(outcomes) if outcomes else 100.0}  # fmt: skip
        suite = ExpectationSuiteIdentifier(name=name)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=suite, run_id=self.run, batch_identifier=name
        )
        meta = {"run_id": self.run, "active_batch_definition": {"data_asset_name": name},
                "batch_spec": {"rows": rows}}  # fmt: skip
        result = ExpectationSuiteValidationResult(
            success=passed == len(outcomes), results=results, suite_name=name, statistics=statistics,
            meta=meta, batch_id=name,
        )  # fmt: skip
        self.context.validation_results_store.set(key, result)
        self.context.build_data_docs(site_names=["churn"], resource_identifiers=[key, suite])


def _listing(lake: Lake, prefix: str) -> dict[str, str]:
    """Parquet files under a prefix with their identity (size and modification stamp or ETag), from one
    listing: a part under one identity never changes, so its tallies can be kept."""
    found = lake.fs.find(lake.path(prefix), detail=True) if lake.exists(prefix) else {}
    parts = {}
    for path, info in found.items():
        relative = lake.relative(path)
        if relative.endswith(".parquet"):
            parts[relative] = f"{relative}|{info.get('size')}|{stamp_of(info)}"
    return parts


def _table_parts(lake: Lake, prefix: str, group_of: Any) -> checks.TableParts:
    groups: dict[str, list[checks.Part]] = {}
    for path, identity in sorted(_listing(lake, prefix).items()):
        groups.setdefault(group_of(path), []).append(checks.read_part(lake, path, identity))
    return checks.TableParts(groups)


def validate(lake: Lake, stage: str, as_of: dt.date | None, run_id: str) -> ValidationReport:
    """Run the stage's suites, publish the Data Docs and summary to the lake, return the report.

    No table is loaded whole: each suite is evaluated part by part in bounded batches, and the tallies
    of parts already checked are kept (`reports/validation/<stage>/_tallies.json`), so a run reads only
    what changed since the last one. Raises ValidationFailed (after publishing) when a critical
    expectation fails.
    """
    if stage not in ("silver", "gold"):
        raise ChurnError(f"--stage must be silver or gold (got {stage!r})")
    if stage == "gold" and as_of is None:
        raise ChurnError("--as-of is required for --stage gold (which features to check)")
    started = time.perf_counter()
    label = as_of.isoformat() if as_of else run_id
    report = ValidationReport(stage, label)
    counts_path = f"reports/validation/{stage}/_row_counts.json"
    tallies_path = f"reports/validation/{stage}/_tallies.json"
    before: dict[str, int] = lake.read_json(counts_path) if lake.exists(counts_path) else {}
    cache: dict[str, dict[str, Any]] = lake.read_json(tallies_path) if lake.exists(tallies_path) else {}
    with tempfile.TemporaryDirectory(prefix="churn-docs-") as folder:
        docs = _Docs(Path(folder), run_id)
        report.absent = [t for t in TABLES if t not in silver_tables(lake)]
        if report.absent:
            log.warning("Silver holds no %s: reported as absent, not validated", ", ".join(report.absent))
        if stage == "silver":
            datasets = {
                t: (_table_parts(lake, f"silver/{t}", lambda p: p.rsplit("/", 2)[-2]),
                    silver_suite(t, as_of, before.get(t)))
                for t in TABLES
                if t not in report.absent
            }  # fmt: skip
        else:
            assert as_of is not None  # required for --stage gold (checked above)
            if not lake.exists(features_prefix(as_of)):
                raise ChurnError(
                    f"no Gold features as of {as_of}: run `churn features --as-of {as_of}` first"
                )
            expectations = gold_suite(
                before.get("features"),
                report.absent,
                uncovered_features(as_of, silver_first_day(lake, "user_logs")),
            )
            datasets = {"features": (_table_parts(lake, features_prefix(as_of), lambda p: p), expectations)}
        for table, (parts, expectations) in datasets.items():
            name = f"{stage}.{table}"
            rows = sum(p.rows for p in parts.parts)
            report.rows[table] = rows
            with Progress(f"validate {name}", total=len(parts.parts), unit="parts") as progress:
                outcomes = checks.evaluate(lake, docs.suite(name, expectations), parts, cache,
                                           lambda part: progress.advance(1, rows=part.rows))  # fmt: skip
            docs.render(name, outcomes, rows)
            log.info("validated %s: %s rows in %d parts", name, f"{rows:,}", len(parts.parts))
            for outcome in outcomes:
                report.evaluated += 1
                if not outcome.success:
                    config = outcome.expectation.configuration
                    kwargs = config.kwargs
                    column = kwargs.get("column") or ",".join(kwargs.get("column_list", []))
                    report.failures.append(Failure(name, config.type, column, _severity(config),
                                                   _detail(outcome.result)))  # fmt: skip
        current = {identity for p in datasets.values() for identity in _identities(p[0])}
        lake.write_json(
            tallies_path, {k: v for k, v in cache.items() if k in current} if stage == "silver" else {}
        )
        prefix = f"reports/validation/{stage}/{label}"
        lake.remove(prefix)
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                relative = path.relative_to(folder).as_posix()
                content_type = "text/html; charset=utf-8" if path.suffix == ".html" else None
                lake.write_bytes(f"{prefix}/{relative}", path.read_bytes(), content_type)
    report.docs_uri = lake.uri(f"{prefix}/index.html")
    report.seconds = time.perf_counter() - started
    summary = {
        "stage": stage, "label": label, "run_id": run_id, "rows": report.rows, "evaluated": report.evaluated,
        "failures": [f.__dict__ for f in report.failures], "absent": report.absent,
        "passed": not report.critical,
        "seconds": round(report.seconds, 2),
    }  # fmt: skip
    lake.write_json(f"{prefix}/summary.json", summary)
    if report.critical:
        lines = "\n".join(f"  {f.line()}" for f in report.failures)
        raise ValidationFailed(
            f"validation of {stage} {label} failed ({len(report.critical)} critical); Data Docs: "
            f"{report.docs_uri}\n{lines}"
        )
    lake.write_json(counts_path, report.rows)
    return report
