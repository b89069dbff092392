-- The audit copy is most of what a batch writes: a row and an entry in each of its indexes
-- per event. A batch now streams it over a connection of its own, by COPY, beside the rest of
-- the batch, and the indexes get cheaper.

-- Per partition, the furthest log position the audit copy holds, written in the audit copy's
-- transaction. That transaction commits just before the batch's own, so if the batch's commit
-- fails the audit copy is ahead of every checkpoint; the next batch looks up the positions up
-- to here instead of copying those events again. Kept equal to ../sqlite/0009_audit_frontier.sql.
CREATE TABLE audit_frontier (
    log_partition BIGINT PRIMARY KEY,
    log_offset    BIGINT NOT NULL
);
-- Until now the audit copy was written in the transaction of the checkpoint that covers it.
INSERT INTO audit_frontier (log_partition, log_offset)
SELECT log_partition, MAX(log_offset) FROM checkpoints GROUP BY log_partition;

-- Customer ids compare byte by byte, as SQLite's BINARY collation does, whatever the database's
-- locale: lists page by (key, customer_id) in the same order on both stores, and the
-- comparisons in the busiest indexes (the audit copy's primary key, customers) skip the
-- locale's collation routine.
ALTER TABLE customer_events ALTER COLUMN customer_id TYPE TEXT COLLATE "C";
ALTER TABLE customers ALTER COLUMN customer_id TYPE TEXT COLLATE "C";
ALTER TABLE transitions ALTER COLUMN customer_id TYPE TEXT COLLATE "C";
ALTER TABLE customer_changes ALTER COLUMN customer_id TYPE TEXT COLLATE "C";

-- Audit rows are appended in log order, so the heap is in position order per partition and a
-- block-range index finds a range of positions (a rebuild's lookup) for a few pages, where
-- the B-tree cost an index entry per event.
DROP INDEX customer_events_by_position;
CREATE INDEX customer_events_by_position ON customer_events USING brin (log_partition, log_offset);
