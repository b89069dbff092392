-- What each customer's grade was computed from (clientlog_domain::grading::GradeInputs, postcard
-- encoded, ~40 bytes): what-if simulation re-grades these without reading the card JSON, which
-- is fifty times larger. NULL only for rows written before this column existed.
ALTER TABLE customers ADD COLUMN grade_inputs BYTEA;

-- Simulation pages through one version's customers by id reading only these columns: an
-- index-only scan never touches the wide card rows.
CREATE INDEX customers_grade_inputs ON customers (version, customer_id) INCLUDE (grade, score, grade_inputs);
