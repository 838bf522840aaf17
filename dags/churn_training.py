"""### Training

Triggered from the UI with a form: the validation cohort month, a sample of the training users for quick
trials, hyperparameter overrides (`{"lightgbm.num_leaves": 31}`) and whether the gate may promote.
Builds the labels and eve-of-month features of the validation cohort and of the `train.train_cohorts`
months up to M-2 (only labels knowable on M's eve train), validates the Gold features, then trains,
evaluates, registers in MLflow and applies the promotion gate (figures and decision in the MLflow run and
on the model version).
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from churn.orchestration import manual, retries

MODEL = Asset(name="churn_champion", uri="churn://registry/kkbox-churn")
IO_RETRIES = retries(2)


@dag(
    dag_id="churn_training",
    schedule=None,
    **manual(),
    tags=["churn"],
    doc_md=__doc__,
    params={
        "cohort": Param(
            "2017-03",
            type="string",
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            description="Validation cohort month (trains on labels knowable on its eve: months up to M-2)",
        ),
        "sample_fraction": Param(
            1.0,
            type="number",
            minimum=0.01,
            maximum=1.0,
            description="Share of training users to use (quick trials)",
        ),
        "overrides": Param(
            {}, type="object", description='Hyperparameters, e.g. {"lightgbm.num_leaves": 31}'
        ),
        "promote": Param(True, type="boolean", description="Let the gate promote a better model"),
    },
)
def churn_training() -> None:
    @task(**IO_RETRIES)
    def gold_data(params: dict | None = None) -> list[str]:
        from lake_connection import churn_steps

        p = params or {}
        return churn_steps().training_gold(p["cohort"], p.get("overrides") or {})

    @task
    def validate_gold(days: list[str]) -> int:
        from lake_connection import churn_steps

        return sum(churn_steps().validate("gold", day)["evaluated"] for day in days)

    @task(outlets=[MODEL])
    def train_register_promote(params: dict | None = None) -> dict:
        from lake_connection import churn_steps

        p = params or {}
        return churn_steps().train(
            p["cohort"], p.get("overrides") or {}, float(p["sample_fraction"]), bool(p["promote"])
        )

    validate_gold(gold_data()) >> train_register_promote()


churn_training()
