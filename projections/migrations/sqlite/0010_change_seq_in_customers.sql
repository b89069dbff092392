-- The change feed's position moves into the customers row it describes: see
-- ../postgres/0012_change_seq_in_customers.sql, which this is kept equal to. (SQLite cannot
-- drop a column's default, so the column keeps 0 as one; every write assigns it.)
ALTER TABLE customers ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE customers SET change_seq = f.seq
FROM customer_changes f
WHERE f.version = customers.version AND f.customer_id = customers.customer_id;
-- Reading the feed in order; unique, so a seq names one change.
CREATE UNIQUE INDEX customers_by_change ON customers (version, change_seq);
DROP TABLE customer_changes;
