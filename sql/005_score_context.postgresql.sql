-- What a retention team acts on, beside each score (additive: readers of the six original columns are
-- untouched). revenue_at_risk = churn_probability x price_per_30d; price_per_30d = the last transaction's
-- actual_amount_paid / payment_plan_days x 30 (NULL when the plan has no days); plan_days, payment_method,
-- auto_renew and city as of the score date, for filtering; reasons: the model's top contributions (JSON,
-- see churn.model.reasons), NULL for users outside the bands whose reasons are stored. Partitions get the
-- columns with the parent; each new partition also gets a (COALESCE(revenue_at_risk, -1) DESC, msno)
-- index: pages by revenue, unknown last.
ALTER TABLE churn_scores
    ADD COLUMN revenue_at_risk DOUBLE PRECISION,
    ADD COLUMN price_per_30d   DOUBLE PRECISION,
    ADD COLUMN plan_days       INTEGER,
    ADD COLUMN payment_method  INTEGER,
    ADD COLUMN auto_renew      BOOLEAN,
    ADD COLUMN city            INTEGER,
    ADD COLUMN reasons         JSONB;

CREATE OR REPLACE VIEW latest_scores AS
SELECT DISTINCT ON (msno) msno, score_date, churn_probability, risk_band, model_version, run_id,
       revenue_at_risk, price_per_30d, plan_days, payment_method, auto_renew, city, reasons
FROM churn_scores
ORDER BY msno, score_date DESC;
