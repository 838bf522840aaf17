"""Why a user is at risk: the model's own per-feature contributions, the strongest few kept as reasons.

LightGBM's `pred_contrib` splits each prediction of the base booster (the LightGBM model inside the
calibrated pipeline) into one additive term per input plus a base value (TreeSHAP, exact for trees), in
log-odds: the terms and the base value sum to the booster's raw score. The calibration after it is
monotone, so a term that raises the raw score raises the probability. A user's reasons are the three
inputs pushing the score up most and the one pulling it down most, each with the input's value as the
model read it (derived ratios included, see `churn.features.spec.DERIVED`).

The nightly job stores them as compact JSON (`reasons_json`, built in Arrow, batch by batch); the API
and the live path read them back, or compute them for one frame, through `Reason`, so the stored and the
live reasons are the same numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.features.spec import DESCRIPTIONS
from churn.model.pipeline import INPUT_NAMES, inner_pipeline

UP = 3  # reasons pushing the probability up
DOWN = 1  # reasons pulling it down


@dataclass(frozen=True)
class Reason:
    """One input's share of a user's score: what it is, the user's value, its log-odds contribution."""

    feature: str
    description: str
    value: float | None
    contribution: float

    @property
    def direction(self) -> str:
        """ "up" when the input raises the churn probability, else "down"."""
        return "up" if self.contribution > 0 else "down"


@dataclass(frozen=True)
class Contributions:
    """Per-row contributions (rows x inputs, log-odds), the base value, and the inputs' values."""

    terms: np.ndarray
    base: np.ndarray
    values: np.ndarray  # float64, NaN for missing; categories as their codes


def _booster_inputs(model: Any, frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The base LightGBM model inside a (calibrated) pipeline and the frame as its input."""
    pipeline = inner_pipeline(model)
    return pipeline.named_steps["model"], pipeline.named_steps["features"].transform(frame)


def contributions(model: Any, frame: pd.DataFrame) -> Contributions:
    """The base booster's exact contributions for each row of a feature frame (TreeSHAP, log-odds)."""
    booster, inputs = _booster_inputs(model, frame)
    raw = np.asarray(booster.predict(inputs, pred_contrib=True), dtype=np.float64)
    values = np.column_stack(
        [np.asarray(inputs[name].astype(np.float64), dtype=np.float64) for name in INPUT_NAMES]
    )
    return Contributions(raw[:, :-1], raw[:, -1], values)


def raw_score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The base booster's log-odds for each row (what the contributions plus the base value sum to)."""
    booster, inputs = _booster_inputs(model, frame)
    return np.asarray(booster.predict(inputs, raw_score=True), dtype=np.float64)


def _ranked(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the UP largest positive terms per row (ties: the input listed first) and the DOWN
    most negative (ties: the input listed last), and a mask of which are really up (> 0) or down (< 0)."""
    order = np.argsort(-terms, axis=1, kind="stable")
    picks = np.concatenate([order[:, :UP], order[:, ::-1][:, :DOWN]], axis=1)
    chosen = np.take_along_axis(terms, picks, axis=1)
    valid = np.concatenate([chosen[:, :UP] > 0, chosen[:, UP:] < 0], axis=1)
    return picks, valid


def top_reasons(found: Contributions) -> list[list[Reason]]:
    """Each row's reasons: up to UP inputs raising the score (strongest first), then up to DOWN lowering
    it."""
    picks, valid = _ranked(found.terms)
    rows = []
    for i in range(len(picks)):
        row = []
        for j, column in enumerate(picks[i]):
            if valid[i, j]:
                name, value = INPUT_NAMES[column], float(found.values[i, column])
                shown = None if np.isnan(value) else value
                row.append(Reason(name, DESCRIPTIONS[name], shown, float(found.terms[i, column])))
        rows.append(row)
    return rows


def _number_text(values: np.ndarray) -> pa.Array:
    """Floats as JSON number text that reads back to the same double; NaN as null."""
    text = pc.cast(pa.array(values, type=pa.float64()), pa.string())
    return pc.if_else(pc.is_nan(pa.array(values, type=pa.float64())), "null", text)


def reasons_json(found: Contributions, rows: np.ndarray | None = None) -> pa.Array:
    """Each row's reasons as compact JSON text (`[{"feature":..,"value":..,"contribution":..},...]`),
    built column-wise in Arrow (no Python object per row); null where `rows` (a mask) is False."""
    picks, valid = _ranked(found.terms)
    names = pa.array(INPUT_NAMES)
    parts = []
    for j in range(picks.shape[1]):
        column = picks[:, j]
        value = np.take_along_axis(found.values, column[:, None], axis=1)[:, 0]
        term = np.take_along_axis(found.terms, column[:, None], axis=1)[:, 0]
        item = pc.binary_join_element_wise(
            '{"feature":"', pc.take(names, pa.array(column)), '","value":', _number_text(value),
            ',"contribution":', _number_text(term), "}", "",
        )  # fmt: skip
        parts.append(pc.if_else(pa.array(valid[:, j]), item, pa.scalar(None, pa.string())))
    joined = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
    text = pc.binary_join_element_wise("[", joined, "]", "")
    if rows is not None:
        text = pc.if_else(pa.array(rows), text, pa.scalar(None, pa.string()))
    return text


def parse_reasons(stored: str | list[Any] | None) -> list[Reason] | None:
    """Stored reasons (JSON text, or the list a JSONB column returns) as `Reason`s with their descriptions;
    None when none were stored."""
    if stored is None:
        return None
    items = json.loads(stored) if isinstance(stored, str) else stored
    return [
        Reason(
            item["feature"],
            DESCRIPTIONS.get(item["feature"], item["feature"]),
            item["value"],
            float(item["contribution"]),
        )
        for item in items
    ]
