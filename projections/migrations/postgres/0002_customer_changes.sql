-- The change feed of the read models (GET /v1/changes). Kept column-for-column equal to
-- ../sqlite/0002_customer_changes.sql.
--
-- One row per customer and version: `seq` is where the customer's row last changed in that
-- version's feed. Every write of a customers row rewrites its row here in the same transaction
-- with a `seq` above every other of the version, taken under the version's write lock (SQLite's
-- single writer; PostgreSQL's advisory lock), so seqs become visible in increasing order and a
-- reader resuming after seq N misses nothing: a customer that changes again moves to the end.
-- Transitions cannot serve as the feed: most card changes (a purchase, a complaint) move no
-- grade, stage or risk band.
CREATE TABLE customer_changes (
    version     BIGINT  NOT NULL,
    customer_id TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    PRIMARY KEY (version, customer_id)
);
-- Reading the feed in order; unique, so a seq names one change.
CREATE UNIQUE INDEX customer_changes_by_seq ON customer_changes (version, seq);

-- Rows projected before this table existed enter the feed in log order.
INSERT INTO customer_changes (version, customer_id, seq)
SELECT version, customer_id,
       ROW_NUMBER() OVER (PARTITION BY version ORDER BY log_partition, log_offset, customer_id)
FROM customers;
