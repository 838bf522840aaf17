"""The promotion gate's rule: no champion, better by more than the margin, tie, worse."""

from __future__ import annotations

from churn.model.registry import decide_promotion


def test_first_model_is_promoted() -> None:
    decision = decide_promotion(0.25, None, 0.01)
    assert decision.promote
    assert decision.reason == "no champion to beat"


def test_better_by_more_than_the_margin_is_promoted() -> None:
    decision = decide_promotion(0.195, 0.200, 0.01, champion_version=3)
    assert decision.promote
    assert "beats champion v3's 0.20000" in decision.reason


def test_better_but_within_the_margin_keeps_the_champion() -> None:
    assert not decide_promotion(0.199, 0.200, 0.01, champion_version=3).promote


def test_a_tie_keeps_the_champion() -> None:
    assert not decide_promotion(0.2, 0.2, 0.0, champion_version=1).promote


def test_worse_keeps_the_champion_and_says_what_was_needed() -> None:
    decision = decide_promotion(0.21, 0.20, 0.0, champion_version=2)
    assert not decision.promote
    assert "needs < 0.20000" in decision.reason
