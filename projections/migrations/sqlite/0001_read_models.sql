-- clientlog read models, embedded (SQLite). Kept column-for-column equal to
-- ../postgres/0001_read_models.sql so one code path writes both.
--
-- Versioning: every table whose rows depend on the policies carries `version`, the projection
-- version (projection_versions.version) that wrote it, as the first column of its primary key.
-- A rebuild writes a new version beside the live one in the same tables; promotion flips one
-- row of projection_versions. Tables that are facts about the log itself (customer_events,
-- audit_heads, dead_letters) are shared by all versions.
--
-- Tables with large rows (cards, states, event bytes) are rowid tables: their rows are
-- appended or rewritten in place and the primary key is a small separate index, where a
-- WITHOUT ROWID table would move kilobytes around its b-tree on every insert.
--
-- Times: business and evaluation times are Unix seconds, `recorded_at` is Unix nanoseconds
-- (as the event log stores it); calendar dates are ISO-8601 text, which sorts by date.

-- One row per projection version: what produced it and whether it serves reads.
CREATE TABLE projection_versions (
    version           INTEGER PRIMARY KEY,
    -- 'live' serves reads (at most one, see the partial index); 'candidate' is being built or
    -- waits for promotion; 'retired' was live once.
    status            TEXT    NOT NULL CHECK (status IN ('live', 'candidate', 'retired')),
    -- The projector's code version and the state encoding, so a reader can tell rows written
    -- by incompatible code apart.
    code_version      INTEGER NOT NULL,
    state_format      INTEGER NOT NULL,
    grading_version   TEXT    NOT NULL,
    lifecycle_version TEXT    NOT NULL,
    churn_version     TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    promoted_at       INTEGER
);
-- At most one live version: promotion must retire the old one in the same transaction.
CREATE UNIQUE INDEX projection_versions_one_live ON projection_versions (status)
    WHERE status = 'live';

-- Where each version's projector is in the log, per partition. Written in the same
-- transaction as the rows it accounts for: this is the exactly-once mechanism.
CREATE TABLE checkpoints (
    version    INTEGER NOT NULL,
    log_partition INTEGER NOT NULL,
    -- The last offset whose effect is in the read models; reading resumes at offset + 1.
    log_offset INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (version, log_partition)
);

-- The customer card, flattened for the front end's lists, with its lineage.
CREATE TABLE customers (
    version             INTEGER NOT NULL,
    customer_id         TEXT    NOT NULL,
    name                TEXT,
    owner               TEXT,
    segment             TEXT,
    region              TEXT,
    channel             TEXT,
    grade               TEXT    NOT NULL,
    score               REAL    NOT NULL,
    stage               TEXT    NOT NULL,
    stage_since         TEXT    NOT NULL,
    stage_rule          TEXT    NOT NULL,
    risk                REAL    NOT NULL,
    risk_band           TEXT    NOT NULL,
    open_complaints     INTEGER NOT NULL,
    active_contracts    INTEGER NOT NULL,
    last_purchase_on    TEXT,
    last_interaction_on TEXT,
    last_activity_on    TEXT,
    currency            TEXT,
    sales_3m_minor      INTEGER NOT NULL,
    sales_12m_minor     INTEGER NOT NULL,
    -- Every grade factor's measured value and sub-score (0–100): what-if simulation re-weights
    -- these without replaying the log.
    monthly_sales_raw          REAL,
    monthly_sales_score        REAL NOT NULL,
    sales_growth_raw           REAL,
    sales_growth_score         REAL NOT NULL,
    channel_coverage_raw       REAL,
    channel_coverage_score     REAL NOT NULL,
    loyalty_raw                REAL,
    loyalty_score              REAL NOT NULL,
    development_prospects_raw  REAL,
    development_prospects_score REAL NOT NULL,
    -- The whole card as the API serves it (verdict with reasons, complaints, contracts).
    card                TEXT    NOT NULL,
    -- Lineage: which code and policies produced this row, from which log prefix, as of when.
    code_version        INTEGER NOT NULL,
    grading_version     TEXT    NOT NULL,
    lifecycle_version   TEXT    NOT NULL,
    churn_version       TEXT    NOT NULL,
    log_partition       INTEGER NOT NULL,
    log_offset          INTEGER NOT NULL,
    events              INTEGER NOT NULL,
    evaluated_at        INTEGER NOT NULL,
    PRIMARY KEY (version, customer_id)
);
-- The front end's lists: filter by one attribute, page in a stable order.
CREATE INDEX customers_by_grade ON customers (version, grade, score DESC);
CREATE INDEX customers_by_stage ON customers (version, stage, last_activity_on DESC);
CREATE INDEX customers_by_risk_band ON customers (version, risk_band, risk DESC);
CREATE INDEX customers_by_owner ON customers (version, owner, customer_id);
CREATE INDEX customers_by_segment ON customers (version, segment, customer_id);
CREATE INDEX customers_by_region ON customers (version, region, customer_id);
-- Sorting the whole book by risk, score or last activity.
CREATE INDEX customers_sorted_by_risk ON customers (version, risk DESC);
CREATE INDEX customers_sorted_by_score ON customers (version, score DESC);
CREATE INDEX customers_sorted_by_activity ON customers (version, last_activity_on DESC);

-- The folded state between batches, so a batch loads only its customers' states.
CREATE TABLE customer_state (
    version      INTEGER NOT NULL,
    customer_id  TEXT    NOT NULL,
    -- The encoding of `state` (clientlog_domain::state::STATE_FORMAT); another format is
    -- rebuilt from the log, never decoded.
    format       INTEGER NOT NULL,
    state        BLOB    NOT NULL,
    PRIMARY KEY (version, customer_id)
);

-- The audit copy of every applied event, by customer in log order, with the exact bytes.
CREATE TABLE customer_events (
    customer_id TEXT    NOT NULL,
    -- 1, 2, 3… per customer in log order: the chain order.
    seq         INTEGER NOT NULL,
    -- UNIQUE: an event is applied once. The projector checks it before folding, so a
    -- duplicate delivered by Kafka changes nothing; the constraint is the backstop.
    event_id    BLOB    NOT NULL CONSTRAINT customer_events_event_id_unique UNIQUE,
    log_partition INTEGER NOT NULL,
    log_offset  INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    -- Business time (the event's `time`), Unix seconds.
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    -- SHA-256(previous row's hash ‖ bytes); the first row's previous hash is 32 zero bytes.
    -- Changing, removing or reordering any row breaks every later hash.
    hash        BLOB    NOT NULL,
    PRIMARY KEY (customer_id, seq)
);

-- The end of each customer's hash chain, so appending to it needs no scan.
CREATE TABLE audit_heads (
    customer_id TEXT    PRIMARY KEY,
    seq         INTEGER NOT NULL,
    hash        BLOB    NOT NULL
) WITHOUT ROWID;

-- Every change of grade, stage or risk band.
CREATE TABLE transitions (
    id            INTEGER PRIMARY KEY,
    version       INTEGER NOT NULL,
    customer_id   TEXT    NOT NULL,
    dimension     TEXT    NOT NULL CHECK (dimension IN ('grade', 'stage', 'risk_band')),
    -- NULL when the customer first appears.
    from_value    TEXT,
    to_value      TEXT    NOT NULL,
    -- 'event' (cause_event_id and the log position say which) or 'reevaluation' (time passed).
    cause         TEXT    NOT NULL CHECK (cause IN ('event', 'reevaluation')),
    cause_event_id BLOB,
    log_partition INTEGER,
    log_offset    INTEGER,
    -- The as_of of the verdict that changed (Unix seconds).
    at            INTEGER NOT NULL,
    CHECK ((cause = 'event') = (cause_event_id IS NOT NULL))
);
-- A customer's history of changes, and the change feed of a version.
CREATE INDEX transitions_by_customer ON transitions (version, customer_id, id);

-- Records the projector could not decode or validate.
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY,
    version       INTEGER NOT NULL,
    log_partition INTEGER NOT NULL,
    log_offset    INTEGER NOT NULL,
    -- The customer the record belongs to (Kafka key, or the embedded log's subject), if known:
    -- that customer's later events are held while this is open.
    customer_id   TEXT,
    reason        TEXT    NOT NULL,
    bytes         BLOB    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('open', 'retried', 'skipped')),
    created_at    INTEGER NOT NULL,
    resolved_at   INTEGER,
    -- A record is dead-lettered once per version, however often it is re-read.
    CONSTRAINT dead_letters_position_unique UNIQUE (version, log_partition, log_offset)
);
-- Finding the open dead letters of a batch's customers.
CREATE INDEX dead_letters_open_by_customer ON dead_letters (version, customer_id)
    WHERE status = 'open';

-- Events of a customer with an open dead letter: stored, not applied, until it is resolved.
CREATE TABLE held_events (
    version        INTEGER NOT NULL,
    log_partition  INTEGER NOT NULL,
    log_offset     INTEGER NOT NULL,
    customer_id    TEXT    NOT NULL,
    dead_letter_id INTEGER NOT NULL REFERENCES dead_letters (id),
    recorded_at    INTEGER NOT NULL,
    bytes          BLOB    NOT NULL,
    PRIMARY KEY (version, log_partition, log_offset)
);
-- Releasing a customer's held events in log order.
CREATE INDEX held_events_by_customer ON held_events (version, customer_id, log_partition, log_offset);

-- Every action on a dead letter, for the record.
CREATE TABLE dead_letter_actions (
    id             INTEGER PRIMARY KEY,
    dead_letter_id INTEGER NOT NULL REFERENCES dead_letters (id),
    action         TEXT    NOT NULL CHECK (action IN ('created', 'retry', 'skip')),
    outcome        TEXT    NOT NULL,
    -- How many held events the action released.
    released       INTEGER NOT NULL,
    at             INTEGER NOT NULL
);
CREATE INDEX dead_letter_actions_by_letter ON dead_letter_actions (dead_letter_id, id);
