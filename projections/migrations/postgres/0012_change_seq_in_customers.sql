-- The change feed's position moves into the customers row it describes. Every customers write
-- used to rewrite a row of customer_changes too, in a statement of its own, with its own heap
-- row and two index entries; now the same write assigns `change_seq`, and one index orders
-- the feed. The rule is the one of 0002: every write of a customers row takes a seq above every
-- other of the version, under the version's write lock and in the row's transaction, so seqs
-- become visible in increasing order and a reader resuming after seq N misses nothing.
-- Kept column-for-column equal to ../sqlite/0010_change_seq_in_customers.sql.
ALTER TABLE customers ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE customers SET change_seq = f.seq
FROM customer_changes f
WHERE f.version = customers.version AND f.customer_id = customers.customer_id;
ALTER TABLE customers ALTER COLUMN change_seq DROP DEFAULT;
-- Reading the feed in order; unique, so a seq names one change.
CREATE UNIQUE INDEX customers_by_change ON customers (version, change_seq);
DROP TABLE customer_changes;
