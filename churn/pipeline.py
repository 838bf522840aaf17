"""The name models registered before the layout change give their first step: `churn.pipeline.FeatureFrame`.

A model is stored with skops, which records each type by its import path and constructs only trusted
types on load; versions saved before `churn.model.pipeline` existed name this module. It stays, holding
nothing but that name, so those versions keep loading (tests/unit/test_model_compat.py). New models
name `churn.model.pipeline.FeatureFrame`.
"""

from churn.model.pipeline import FeatureFrame

__all__ = ["FeatureFrame"]
