-- The front end's most common list, one grade sorted by churn risk (GET /v1/customers
-- ?grade=B&sort=risk), in exactly the API's order: risk descending, customer id breaking ties.
-- Without it SQLite walks customers_sorted_by_risk, looks up every row to test the grade, and
-- sorts each group of equal risk (thousands of customers share the capped maximum) by id
-- before it can answer the first 50. Kept equal to ../postgres/0003_list_indexes.sql.
CREATE INDEX customers_by_grade_risk ON customers (version, grade, risk DESC, customer_id);
