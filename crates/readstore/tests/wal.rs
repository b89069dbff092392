//! The embedded read store keeps its write-ahead log bounded: past the limit, `bound_wal`
//! empties it once no reader needs it, and says so when a reader kept it from doing that.

use clientlog_readstore::{ReadStore, StoreConfig};

fn wal_bytes(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_wal_truncates_a_wal_past_the_limit_once_readers_are_done() {
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
    assert_eq!(wal_bytes(&path), 0, "the WAL was truncated");
    assert!(
        !store.bound_wal(limit).await.expect("bound again"),
        "under the limit there is nothing to do"
    );

    let rows: i64 = writer
        .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 8, "every committed row is in the database");
    store.close().await;
}
