"""GET /models/champion: which model answers, how it validated, what it reads."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ChampionDep
from api.schemas import AUTH_RESPONSES, ChampionModel, Problem
from api.security import ApiKey

router = APIRouter(prefix="/models", tags=["models"], dependencies=[ApiKey], responses=AUTH_RESPONSES)


@router.get("/champion", response_model=ChampionModel, responses={503: {"model": Problem}})
async def champion(holder: ChampionDep) -> ChampionModel:
    """The champion being served: version, training time, validation metrics, feature list, and a newer
    champion version refused (its artifact cannot be loaded: this server kept the last good one)."""
    loaded = holder.current()
    return ChampionModel(
        name=loaded.name,
        version=loaded.version,
        trained_at=loaded.trained_at,
        run_id=loaded.run_id,
        val_cohort=loaded.tags.get("val_cohort"),
        metrics=loaded.metrics,
        features=loaded.features,
        refused=holder.refusal(),
    )
