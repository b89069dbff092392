-- Per partition, the furthest log position the audit copy holds, written with the audit rows.
-- Positions past it need no lookup in the audit copy: no event there has been copied. (On
-- PostgreSQL the audit copy commits on a connection of its own just before the batch, so it
-- may be ahead of every checkpoint; here it commits with them. Kept equal to
-- ../postgres/0010_audit_copy_on_its_own_connection.sql.)
CREATE TABLE audit_frontier (
    log_partition INTEGER PRIMARY KEY,
    log_offset    INTEGER NOT NULL
);
-- Until now the audit copy was written in the transaction of the checkpoint that covers it.
INSERT INTO audit_frontier (log_partition, log_offset)
SELECT log_partition, MAX(log_offset) FROM checkpoints GROUP BY log_partition;
