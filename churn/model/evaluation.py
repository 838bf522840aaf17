"""Validation metrics and plots of a churn model on one cohort.

Log loss is the primary metric (as in the WSDM challenge): published scores are read as probabilities,
so a model that ranks well but is miscalibrated is worse, not better. ECE uses equal-count bins: churn
probabilities crowd near zero, and equal-width bins would put almost every user in the first bin and hide
miscalibration there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-count bins of |observed rate - mean prediction|, weighted by the bin's share.

    Bin edges are quantiles of the predictions (as in sklearn's calibration_curve "quantile"), so equal
    predictions always share a bin.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return 0.0
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    which = np.searchsorted(edges, p, side="right")
    counts = np.bincount(which, minlength=edges.size + 1)
    gaps = np.abs(np.bincount(which, weights=y - p, minlength=edges.size + 1))
    return float(gaps[counts > 0].sum() / p.size)


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10% highest scores over the overall churn rate (how much a campaign gains)."""
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    base = float(y.mean())
    return float(y[top].mean()) / base if base > 0 else float("nan")


def classification_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "val_") -> dict[str, float]:
    """The logged metric set of one prediction vector against labels."""
    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    both_classes = 0 < y.sum() < len(y)
    metrics = {
        "log_loss": log_loss(y, p, labels=[0, 1]),
        "roc_auc": roc_auc_score(y, p) if both_classes else float("nan"),
        "pr_auc": average_precision_score(y, p) if both_classes else float("nan"),
        "brier": brier_score_loss(y, p),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_top_decile(y, p),
    }
    return {f"{prefix}{name}": float(value) for name, value in metrics.items()}


def plots(y: np.ndarray, p: np.ndarray, importance: dict[str, float], title: str) -> dict[str, Figure]:
    """ROC, precision-recall, calibration curve and feature importance, as matplotlib figures."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    figures: dict[str, Figure] = {}
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {title}")
    ax.legend(loc="lower right")
    figures["roc.png"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, p):.3f}")
    ax.axhline(float(np.mean(y)), linestyle=":", color="grey", label="churn rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall, {title}")
    ax.legend(loc="upper right")
    figures["pr.png"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    observed, predicted = calibration_curve(y, p, n_bins=ECE_BINS, strategy="quantile")
    top = max(float(predicted.max()), float(observed.max()), 0.05)
    ax.plot([0, top], [0, top], linestyle=":", color="grey")
    ax.plot(predicted, observed, marker="o", label=f"ECE {expected_calibration_error(y, p):.4f}")
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate", title=f"Calibration, {title}")
    ax.legend(loc="upper left")
    figures["calibration.png"] = fig

    ranked = sorted(importance.items(), key=lambda item: item[1])[-25:]
    fig = Figure(figsize=(6, 8))
    ax = fig.subplots()
    ax.barh([name for name, _ in ranked], [value for _, value in ranked])
    ax.set(xlabel="total gain", title=f"Feature importance (top {len(ranked)})")
    fig.tight_layout()
    figures["feature_importance.png"] = fig
    return figures
