"""Metrics of a prediction vector: the formulas on vectors with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from churn.model.evaluation import classification_metrics, expected_calibration_error, lift_top_decile


def test_ece_is_zero_when_each_bin_matches_its_rate() -> None:
    p = np.repeat([0.1, 0.5], 50)
    y = np.concatenate([np.r_[np.ones(5), np.zeros(45)], np.r_[np.ones(25), np.zeros(25)]])
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.0)


def test_ece_measures_a_constant_overestimate() -> None:
    p = np.full(100, 0.3)
    y = np.r_[np.ones(10), np.zeros(90)]
    assert expected_calibration_error(y, p) == pytest.approx(0.2)


def test_lift_of_the_top_decile() -> None:
    p = np.linspace(0, 1, 100)
    y = np.zeros(100)
    y[-5:] = 1  # all 5 churners in the top 10 scores: rate 0.5 vs 0.05 overall
    y[0:5] = 1  # and 5 more at the bottom: overall 0.10, top decile 0.5
    assert lift_top_decile(y, p) == pytest.approx(5.0)


def test_metric_set_names_and_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = classification_metrics(y, p)
    assert set(metrics) == {"val_log_loss", "val_roc_auc", "val_pr_auc", "val_brier", "val_ece",
                            "val_lift_top_decile"}  # fmt: skip
    assert metrics["val_roc_auc"] == pytest.approx(0.75)
    assert metrics["val_brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert metrics["val_log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
