"""KKBox churn platform: the library that holds all the logic (never imports Airflow)."""
