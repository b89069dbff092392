-- The audit copy by log position. A version catching up with the log (a rebuild) needs, for
-- every batch, the events of the batch's positions that another version already copied: one
-- range read here, where it looked up every event id in the unique index (a random read per
-- event). Positions only grow, so rows are added at the index's end.
CREATE INDEX customer_events_by_position ON customer_events (log_partition, log_offset);
