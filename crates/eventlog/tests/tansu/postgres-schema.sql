-- The PostgreSQL schema tansu 0.6.0's `postgres://` storage engine expects but does not create.
--
-- Written for this project, for the postgres engine of tansu 0.6.0 (tansu-storage 0.6.0, an
-- Apache-2.0 project by Peter Morgan). Tables, columns and keys follow the crate's SQLite DDL
-- (`src/ddl/*.sql`); the PostgreSQL types follow what `src/pg.rs` binds and reads through
-- tokio-postgres, which checks Rust types against column types strictly:
--
--   i16 <-> smallint, i32 <-> integer, i64 <-> bigint, &str/String <-> text, &[u8] <-> bytea,
--   SystemTime <-> timestamptz, Uuid <-> uuid, bool <-> boolean, serde_json::Value <-> jsonb.
--
-- Every `on conflict (...)` in tansu's queries (`src/sql/*.sql`) needs the unique constraint
-- named here; every `returning id` needs an identity column. Idempotent: applying it again to
-- a database that has it changes nothing. Queries tansu 0.6.0 carries but never runs on
-- PostgreSQL (e.g. `producer_update_sequence.sql`, `watermark_insert_from_txn.sql`) name
-- columns the crate's own DDL lacks too and are not supported here; nor is DeleteRecords, whose
-- inline SQL in `pg.rs` names columns (`record.id`, `record.partition`) of an older layout.
--
-- Not a schema matter, but met by whoever runs tansu on PostgreSQL: ListOffsets(latest) at
-- read_committed runs `list_latest_offset_committed.sql`, which only PostgreSQL 16+ parses
-- (a subquery in FROM without an alias), and tansu verifies the server's TLS certificate, so
-- a local server with a self-signed one needs `?sslmode=disable` (see ../kafka_restart.rs).

-- One row per cluster id the broker registers at start (`register_broker.sql`: on conflict (name)).
create table if not exists cluster (
    id integer generated always as identity primary key,
    name text not null unique,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null
);

-- `topic_insert.sql` binds the id as a Uuid and the counts as i32; a unique violation on
-- (cluster, name) is how tansu answers TOPIC_ALREADY_EXISTS.
create table if not exists topic (
    id integer generated always as identity primary key,
    cluster integer not null references cluster (id) on delete cascade,
    name text not null,
    uuid uuid not null unique,
    partitions integer not null,
    replication_factor integer not null,
    is_internal boolean default false not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (cluster, name)
);

-- A topic partition; `produce` reads its id as i32 and copies it into record and header.
create table if not exists topition (
    id integer generated always as identity primary key,
    topic integer references topic (id) on delete cascade,
    partition integer,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (topic, partition)
);

-- Low and high watermarks per partition (i64); `produce` locks this row (for no key update)
-- to serialise offset assignment, so there is exactly one per topition.
create table if not exists watermark (
    id integer generated always as identity primary key,
    topition integer unique references topition (id) on delete cascade,
    low bigint,
    high bigint,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null
);

-- One row per record (offsets are per record, not per batch), written by a binary COPY whose
-- column types are fixed in `pg.rs`: int4, int8, int2, int8, int2, timestamptz, bytea, bytea.
-- `transaction_id` is not copied: its default records the writing transaction, and the fetch
-- query (`pg/record_fetch.sql`) compares it with `pg_snapshot_xmin(pg_current_snapshot())`,
-- hence xid8.
create table if not exists record (
    topition integer references topition (id) on delete cascade,
    offset_id bigint not null,
    attributes smallint,
    producer_id bigint,
    producer_epoch smallint,
    timestamp timestamptz,
    k bytea,
    v bytea,
    transaction_id xid8 default pg_current_xact_id() not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    primary key (topition, offset_id)
);

-- Record headers, copied in after their records (int4, int8, bytea, bytea).
create table if not exists header (
    topition integer,
    offset_id bigint,
    k bytea,
    v bytea,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    foreign key (topition, offset_id) references record (topition, offset_id) on delete cascade
);

-- `fetch` looks up the headers of every record it returns, one query per record.
create index if not exists header_record on header (topition, offset_id);

create table if not exists topic_configuration (
    id integer generated always as identity primary key,
    topic integer references topic (id) on delete cascade,
    name text not null,
    value text,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (topic, name)
);

create table if not exists consumer_group (
    id integer generated always as identity primary key,
    cluster integer not null references cluster (id) on delete cascade,
    name text not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (cluster, name)
);

-- The group coordinator's state: a JSON document (serde_json::Value) under an optimistic
-- e-tag (Uuid), replaced only when the caller's e-tag matches.
create table if not exists consumer_group_detail (
    id integer generated always as identity primary key,
    consumer_group integer unique references consumer_group (id) on delete cascade,
    e_tag uuid not null,
    detail jsonb not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null
);

-- Committed offsets (OffsetCommit: i64 offset, Option<i32> leader epoch, Option<SystemTime>).
create table if not exists consumer_offset (
    id integer generated always as identity primary key,
    consumer_group integer references consumer_group (id) on delete cascade,
    topition integer references topition (id) on delete cascade,
    committed_offset bigint,
    leader_epoch integer,
    timestamp timestamptz,
    metadata text,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (consumer_group, topition)
);

-- Producer ids are i64 in Kafka; `producer_insert.sql` returns the new one.
create table if not exists producer (
    id bigint generated always as identity primary key,
    cluster integer not null references cluster (id) on delete cascade,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null
);

-- Producer epochs are i16; `producer_epoch_insert.sql` returns the new one.
create table if not exists producer_epoch (
    id integer generated always as identity primary key,
    producer bigint references producer (id) on delete cascade,
    epoch smallint default 0 not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (producer, epoch)
);

-- The idempotent producer's next expected sequence (i32) per epoch and partition.
create table if not exists producer_detail (
    id integer generated always as identity primary key,
    producer_epoch integer references producer_epoch (id) on delete cascade,
    topition integer references topition (id) on delete cascade,
    sequence integer default 0 not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (producer_epoch, topition)
);

-- Transactional producers (unused by clientlog, kept so every query tansu runs can prepare).
create table if not exists txn (
    id integer generated always as identity primary key,
    cluster integer references cluster (id) on delete cascade,
    name text,
    producer bigint references producer (id) on delete cascade,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (cluster, name)
);

create table if not exists txn_detail (
    id integer generated always as identity primary key,
    "transaction" integer references txn (id) on delete cascade,
    producer_epoch integer references producer_epoch (id) on delete cascade,
    transaction_timeout_ms integer not null,
    started_at timestamptz,
    -- BEGIN, PREPARE_COMMIT, PREPARE_ABORT, COMMITTED or ABORTED
    status text,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique ("transaction", producer_epoch)
);

create table if not exists txn_topition (
    id integer generated always as identity primary key,
    txn_detail integer references txn_detail (id) on delete cascade,
    topition integer references topition (id) on delete cascade,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (txn_detail, topition)
);

create table if not exists txn_produce_offset (
    id integer generated always as identity primary key,
    txn_topition integer unique references txn_topition (id) on delete cascade,
    offset_start bigint,
    offset_end bigint,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null
);

create table if not exists txn_offset_commit (
    id integer generated always as identity primary key,
    txn_detail integer references txn_detail (id) on delete cascade,
    consumer_group integer references consumer_group (id) on delete cascade,
    generation_id integer,
    member_id text,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (txn_detail, consumer_group)
);

create table if not exists txn_offset_commit_tp (
    id integer generated always as identity primary key,
    offset_commit integer references txn_offset_commit (id) on delete cascade,
    topition integer references topition (id) on delete cascade,
    committed_offset bigint,
    leader_epoch integer,
    metadata text,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (offset_commit, topition)
);

-- SASL/SCRAM credentials: mechanism and iterations are i32, the keys and salt bytes.
create table if not exists scram_credential (
    id integer generated always as identity primary key,
    cluster integer not null references cluster (id) on delete cascade,
    username text not null,
    mechanism integer not null,
    salt bytea not null,
    iterations integer not null,
    stored_key bytea not null,
    server_key bytea not null,
    last_updated timestamptz default current_timestamp not null,
    created_at timestamptz default current_timestamp not null,
    unique (cluster, username, mechanism)
);
