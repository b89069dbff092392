-- The embedded event log (schema version 1). Applied in one transaction when the file is
-- opened and `PRAGMA user_version` is below 1.

CREATE TABLE events (
    -- The log offset. An alias of the rowid, so an append goes to the end of the b-tree and
    -- reading in order is a range scan. Rows are never deleted (see the triggers), so an offset
    -- is never reused.
    position    INTEGER PRIMARY KEY,
    -- The event id as a 16-byte UUID. UNIQUE so that the database itself refuses a repeated id,
    -- whichever process or batch appended it first; the unique index is also how the writer
    -- finds the original's position for a duplicate.
    event_id    BLOB    NOT NULL CONSTRAINT events_event_id_unique UNIQUE,
    -- The customer id (kept for inspection with the sqlite3 shell; the log has one partition).
    subject     TEXT    NOT NULL,
    -- When the log accepted the event: unix nanoseconds, the writer's clock at the commit
    -- group, never decreasing.
    recorded_at INTEGER NOT NULL,
    -- The producer's exact bytes; auditors hash them.
    payload     BLOB    NOT NULL
) STRICT;

-- The log is append-only: nothing, not even a stray maintenance script, rewrites history.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

PRAGMA user_version = 1;
