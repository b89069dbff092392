//! The embedded read store keeps its write-ahead log bounded: past the limit, `bound_wal`
//! copies all of it into the database once no reader needs it, so that the next write starts
//! the WAL again from its beginning, and says so when a reader kept it from doing that.

use clientlog_readstore::{ReadStore, StoreConfig};

/// Frames in the WAL, as a checkpoint that copies nothing reports them.
fn wal_frames(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .expect("checkpoint")
}

fn wal_bytes(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_wal_restarts_a_wal_past_the_limit_once_readers_are_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("readstore.db");
    let store = ReadStore::open(&StoreConfig::Sqlite { path: path.clone() })
        .await
        .expect("open");

    // A reader whose snapshot keeps every later frame in the WAL.
    let reader = rusqlite::Connection::open(&path).expect("reader");
    reader
        .execute_batch("BEGIN; SELECT COUNT(*) FROM projection_versions;")
        .expect("read snapshot");
    let writer = rusqlite::Connection::open(&path).expect("writer");
    writer
        .execute_batch("CREATE TABLE filler (bytes BLOB NOT NULL)")
        .expect("create");
    for _ in 0..8 {
        writer
            .execute("INSERT INTO filler (bytes) VALUES (zeroblob(262144))", [])
            .expect("insert");
    }
    let limit = 1 << 20;
    assert!(wal_bytes(&path) > limit, "the WAL grew past the limit");

    assert!(
        !store.bound_wal(limit).await.expect("bound while read"),
        "a reader still needs the WAL: it cannot be emptied"
    );
    assert!(wal_bytes(&path) > limit);

    reader.execute_batch("COMMIT").expect("end the read");
    assert!(store.bound_wal(limit).await.expect("bound"));
    assert!(
        !store.bound_wal(64 << 20).await.expect("bound again"),
        "under the limit there is nothing to do"
    );
    writer
        .execute("INSERT INTO filler (bytes) VALUES (zeroblob(16))", [])
        .expect("insert after the restart");
    assert!(
        wal_frames(&writer) < 10,
        "the next write started the WAL from its beginning"
    );

    let rows: i64 = writer
        .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 9, "every committed row is in the database");
    store.close().await;
}
