"""The model artifact: feature frame -> checks, cleaning, derived features -> sampler -> LightGBM,
with a probability correction fitted afterwards on users the model never saw.

Scoring, the API and the tests load this one object and call `predict_proba(feature_frame)`; the frame is
what `churn.features.spec.build_features` returns (extra columns such as msno are ignored), so batch and live
predictions go through the same code.

imbalanced-learn's Pipeline applies the sampler only in `fit`; at prediction time the step is skipped.
Resampling shifts the predicted probabilities towards the minority class, so every candidate (resampled
or not) is wrapped in a `CalibratedClassifierCV` over the frozen pipeline, fitted on held-out users: the
output reads as a probability again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import Pipeline
from imblearn.under_sampling import RandomUnderSampler
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from churn.errors import ChurnError
from churn.features.spec import CATEGORICAL, DERIVED, FEATURE_NAMES
from churn.model.params import Params

INPUT_NAMES: tuple[str, ...] = (*FEATURE_NAMES, *(d.name for d in DERIVED))
"""The model's input columns: the features in spec order, then the derived ratios."""


class FeatureFrameError(ChurnError, ValueError):
    """A frame handed to the model does not have the feature columns or dtypes it was trained on."""


class FeatureFrame(TransformerMixin, BaseEstimator):
    """Check a feature frame, clean it and add derived columns: the first step of every model.

    It fails loudly (naming the column) on a missing column or a non-numeric dtype instead of letting
    LightGBM predict from shifted or garbage columns. Cleaning: infinities become missing; categorical
    codes become pandas categories with the levels seen in training (unseen levels become missing), so a
    code the model never saw cannot be read as a neighbour of known ones.
    """

    def __init__(
        self, features: tuple[str, ...] = FEATURE_NAMES, categorical: tuple[str, ...] = CATEGORICAL
    ) -> None:
        self.features = features
        self.categorical = categorical

    def _checked(self, frame: Any) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise FeatureFrameError(
                f"the model takes a pandas DataFrame of features, got {type(frame).__name__}"
            )
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise FeatureFrameError(f"feature frame is missing column(s): {shown}")
        for name in self.features:
            dtype = frame[name].dtype
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                raise FeatureFrameError(
                    f"feature frame column {name!r} has dtype {dtype}; expected a number (int, float or bool)"
                )
        return frame

    def fit(self, frame: pd.DataFrame, y: Any = None) -> FeatureFrame:
        """Remember the categorical levels of the training frame."""
        frame = self._checked(frame)
        self.categories_ = {
            name: np.sort(frame[name].dropna().unique().astype(np.float64)) for name in self.categorical
        }
        self.n_features_in_ = len(self.features)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Feature frame -> model input (features in spec order, derived ratios, categories).

        The input is float32 built column by column into one new frame: LightGBM bins every feature
        into at most `max_bin` values, so float64 buys nothing, and at the real size (millions of rows
        a cohort) each float64 copy of the frame costs gigabytes (issue 18's 12 GiB training budget).
        """
        frame = self._checked(frame)
        columns: dict[str, Any] = {}
        for name in self.features:
            values = frame[name].to_numpy(dtype=np.float32, na_value=np.nan, copy=True)
            values[np.isinf(values)] = np.nan
            columns[name] = values
        with np.errstate(divide="ignore", invalid="ignore"):
            for derived in DERIVED:
                bottom = columns[derived.denominator]
                ratio = columns[derived.numerator] / np.where(bottom != 0, bottom, np.float32(np.nan))
                columns[derived.name] = ratio.astype(np.float32, copy=False)
        for name in self.categorical:
            codes = columns[name].astype(np.float64)  # the levels are float64: compare alike
            columns[name] = pd.Categorical(codes, categories=self.categories_[name])
        return pd.DataFrame(columns, index=frame.index, copy=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Column names of the model input."""
        return np.array([*self.features, *(d.name for d in DERIVED)], dtype=object)


def make_sampler(name: str, ratio: float, seed: int) -> Any:
    """The imbalanced-learn sampler called `name` ("none" -> no step)."""
    if name == "none":
        return "passthrough"
    if name == "random_under":
        return RandomUnderSampler(sampling_strategy=ratio, random_state=seed)
    if name == "random_over":
        return RandomOverSampler(sampling_strategy=ratio, random_state=seed)
    raise ChurnError(f"unknown sampler {name!r}: use none, random_under or random_over")


def build_pipeline(sampler: str, params: Params) -> Pipeline:
    """An unfitted pipeline for one sampler choice, configured from params.yaml."""
    lgbm = params.lightgbm.model_dump(exclude={"early_stopping_rounds"})
    model = LGBMClassifier(**lgbm, random_state=params.train.seed, n_jobs=2, verbose=-1)
    return Pipeline(
        [
            ("features", FeatureFrame()),
            ("sampler", make_sampler(sampler, params.train.sampling_ratio, params.train.seed)),
            ("model", model),
        ]
    )


def fit_pipeline(
    pipeline: Pipeline,
    fit: pd.DataFrame,
    y_fit: np.ndarray,
    stop: pd.DataFrame,
    y_stop: np.ndarray,
    rounds: int,
    resampled: bool,
) -> Pipeline:
    """Fit with early stopping on untouched held-out users.

    The stopping set bypasses the sampler, so for a resampled model log loss there mostly measures the
    shifted prior (which calibration removes later): such models stop on AUC, which a prior shift leaves
    unchanged; the others stop on log loss.
    """
    import lightgbm

    features = pipeline.named_steps["features"].fit(fit)
    metric = "auc" if resampled else "binary_logloss"
    pipeline.fit(
        fit,
        y_fit,
        model__eval_X=(features.transform(stop),),
        model__eval_y=(y_stop,),
        model__eval_metric=metric,
        model__callbacks=[lightgbm.early_stopping(rounds, first_metric_only=True, verbose=False)],
    )
    return pipeline


def calibrate(pipeline: Pipeline, frame: pd.DataFrame, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    """Wrap a fitted pipeline in a probability correction fitted on users it never saw."""
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method=method)
    return calibrated.fit(frame, y)


def inner_pipeline(model: Any) -> Pipeline:
    """The fitted imbalanced-learn Pipeline inside a calibrated model (or the model itself)."""
    if isinstance(model, CalibratedClassifierCV):
        frozen = model.calibrated_classifiers_[0].estimator
        return frozen.estimator if isinstance(frozen, FrozenEstimator) else frozen
    return model


def churn_probability(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """P(churn) for each row of a feature frame (the positive class's column of predict_proba)."""
    classes = list(model.classes_)
    return model.predict_proba(frame)[:, classes.index(1)]
