-- What a retention team acts on, beside each score (additive; see the PostgreSQL migration). reasons is
-- JSON text here.
ALTER TABLE churn_scores ADD COLUMN revenue_at_risk REAL;
ALTER TABLE churn_scores ADD COLUMN price_per_30d REAL;
ALTER TABLE churn_scores ADD COLUMN plan_days INTEGER;
ALTER TABLE churn_scores ADD COLUMN payment_method INTEGER;
ALTER TABLE churn_scores ADD COLUMN auto_renew INTEGER;
ALTER TABLE churn_scores ADD COLUMN city INTEGER;
ALTER TABLE churn_scores ADD COLUMN reasons TEXT;
CREATE INDEX churn_scores_revenue ON churn_scores (score_date, (COALESCE(revenue_at_risk, -1)) DESC, msno);

DROP VIEW latest_scores;
CREATE VIEW latest_scores AS
SELECT s.msno, s.score_date, s.churn_probability, s.risk_band, s.model_version, s.run_id,
       s.revenue_at_risk, s.price_per_30d, s.plan_days, s.payment_method, s.auto_renew, s.city, s.reasons
FROM churn_scores AS s
WHERE s.score_date = (SELECT max(l.score_date) FROM churn_scores AS l WHERE l.msno = s.msno);
